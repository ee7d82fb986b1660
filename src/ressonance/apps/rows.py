"""What the SQL app stores share: an `AppRecord` to and from a table row.

Settings are kept as one JSON object (the app's own overrides of its plan), so a new
setting needs no schema change. JSON keeps the types the stores promise to round-trip:
strings, integers, booleans and lists (allowed_origins).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from ressonance.apps.base import AppRecord

COLUMNS: Final = "id, key, secret, name, enabled, plan, settings, created_at, updated_at"


def settings_json(record: AppRecord) -> str:
    """The record's settings as a JSON object (tuples become lists)."""
    return json.dumps(dict(record.settings), separators=(",", ":"), sort_keys=True)


def record_from_row(row: Mapping[str, object] | tuple[object, ...]) -> AppRecord:
    """An AppRecord from the columns of `COLUMNS`, in that order."""
    values = tuple(row.values()) if isinstance(row, Mapping) else tuple(row)
    app_id, key, secret, name, enabled, plan, settings, created_at, updated_at = values
    parsed = json.loads(settings) if isinstance(settings, str | bytes) else settings
    if not isinstance(parsed, dict):
        raise ValueError(f"app {app_id!r}: settings are not a JSON object")
    return AppRecord(
        id=str(app_id),
        key=str(key),
        secret=str(secret),
        name=str(name),
        enabled=bool(enabled),
        plan=str(plan),
        settings=parsed,
        created_at=float(created_at),  # type: ignore[arg-type]
        updated_at=float(updated_at),  # type: ignore[arg-type]
    )
