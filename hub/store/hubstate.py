"""A small key/value table where the daemon leaves its health for `homeguard-hub status`."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from hub.store.db import transaction


def write(db: sqlite_utils.Database, values: dict[str, Any]) -> None:
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO hub_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v)) for k, v in values.items()],
        )


def read(db: sqlite_utils.Database) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM hub_state")}
