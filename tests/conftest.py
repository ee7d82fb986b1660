"""Session-wide real services: one valkey, one nats-server and one PostgreSQL, started on
first use.

Set REDIS_URL / NATS_URL / DATABASE_URL to use running servers instead (see tests/services.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.shared("REDIS_URL", services.valkey, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.shared("NATS_URL", services.nats, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.shared_postgres(tmp_path_factory) as url:
        yield url
