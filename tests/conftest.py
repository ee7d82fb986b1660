"""Session-wide real services, and the Hypothesis settings of the property tests.

Real services: one valkey, one nats-server and one PostgreSQL, started on first use. Set
REDIS_URL / NATS_URL / DATABASE_URL to use running servers instead (see tests/services.py).

Property tests run a moderate number of examples with no deadline, since the machines that run
them are shared and their timings noisy. `HYPOTHESIS_PROFILE=thorough` runs twenty times as many.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests import services

settings.register_profile("ressonance", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("ressonance"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ressonance"))


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
