"""Shared settings for the protocol-core tests."""

from __future__ import annotations

import pytest

_MAX_ID = 40


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Keep test ids readable when a table holds long frames or bodies."""
    if isinstance(val, bytes):
        val = val.decode(errors="replace")
    if isinstance(val, str) and len(val) > _MAX_ID:
        return f"{val[:_MAX_ID]}...({len(val)})"
    return None
