"""Readings history (bounded by retention), each device's last values, and the device registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from hub.events import Reading
from hub.store.db import transaction


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    adapter: str
    name: str
    location: str | None
    role: str | None
    model: str | None
    origin: str  # "config" | "discovered"


@dataclass(frozen=True, slots=True)
class SeenUpdate:
    device_id: str
    last_seen: float | None
    online: bool | None


def _columns(value: float | bool | str) -> tuple[float | None, str | None]:
    if isinstance(value, str):
        return None, value
    if isinstance(value, bool):
        return float(value), "true" if value else "false"
    return float(value), None


def record(db: sqlite_utils.Database, readings: list[Reading], seen: list[SeenUpdate]) -> None:
    """Append readings, refresh each device's last values and last-seen, in one transaction.

    The newest written wins (not the largest stamp): after the wall clock steps back, a value
    stamped before the step must not hide the ones after it."""
    rows = [(r.device_id, r.measurement.value, r.at, *_columns(r.value)) for r in readings]
    with transaction(db):
        if rows:
            db.conn.executemany(
                "INSERT INTO readings (device_id, measurement, at, value, text) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            latest: dict[tuple[str, str], tuple[Any, ...]] = {}
            for row in rows:
                latest[(row[0], row[1])] = row
            db.conn.executemany(
                "INSERT INTO device_state (device_id, measurement, at, value, text) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(device_id, measurement) DO UPDATE SET "
                "at = excluded.at, value = excluded.value, text = excluded.text",
                list(latest.values()),
            )
        if seen:
            db.conn.executemany(
                "UPDATE devices SET last_seen = coalesce(?, last_seen), "
                "online = coalesce(?, online) WHERE id = ?",
                [
                    (s.last_seen, None if s.online is None else int(s.online), s.device_id)
                    for s in seen
                ],
            )


#: Readings deleted per transaction by `prune`. Each batch is one short job on the store's one
#: thread (tens of milliseconds), so an incident's write or the health row never waits behind a
#: prune of weeks of readings (18 million in one transaction held that thread for 40 s).
PRUNE_BATCH = 20_000


def prune(db: sqlite_utils.Database, before: float, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` of the readings older than `before`, oldest first; returns how many
    went (fewer than `limit`: none are left)."""
    with transaction(db):
        cur = db.execute(
            "DELETE FROM readings WHERE rowid IN "
            "(SELECT rowid FROM readings WHERE at < ? ORDER BY at LIMIT ?)",
            [before, limit],
        )
    return int(cur.rowcount)


def register_devices(db: sqlite_utils.Database, devices: list[DeviceRow]) -> None:
    """Insert or refresh devices (configured ones win over discovered ones)."""
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO devices (id, adapter, name, location, role, model, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET adapter = excluded.adapter, "
            "name = excluded.name, location = coalesce(excluded.location, devices.location), "
            "role = excluded.role, model = coalesce(excluded.model, devices.model), "
            "origin = CASE WHEN devices.origin = 'config' AND excluded.origin = 'discovered' "
            "THEN 'config' ELSE excluded.origin END",
            [(d.id, d.adapter, d.name, d.location, d.role, d.model, d.origin) for d in devices],
        )


def forget_discovered(db: sqlite_utils.Database, device_ids: list[str]) -> None:
    """Discovered devices their ecosystem no longer has stop showing (configured ones stay)."""
    with transaction(db):
        db.conn.executemany(
            "UPDATE devices SET origin = 'removed' WHERE id = ? AND origin = 'discovered'",
            [(i,) for i in device_ids],
        )


def forget_unconfigured(db: sqlite_utils.Database, configured: set[str]) -> None:
    """Configured devices removed from the file stop showing as configured."""
    with transaction(db):
        for (device_id,) in db.execute("SELECT id FROM devices WHERE origin = 'config'").fetchall():
            if device_id not in configured:
                db.execute("UPDATE devices SET origin = 'removed' WHERE id = ?", [device_id])


@dataclass(frozen=True, slots=True)
class HealthRow:
    device_id: str
    health: str
    expected_interval_s: float | None
    timeout_s: float


def save_health(db: sqlite_utils.Database, rows: list[HealthRow]) -> None:
    """What liveness concluded about each device (for `homeguard-hub sensors`). An interval not
    known (yet) keeps the one saved before: it is what the next start-up remembers."""
    with transaction(db):
        db.conn.executemany(
            "UPDATE devices SET health = ?, "
            "expected_interval_s = coalesce(?, expected_interval_s), timeout_s = ? WHERE id = ?",
            [(r.health, r.expected_interval_s, r.timeout_s, r.device_id) for r in rows],
        )


@dataclass(frozen=True, slots=True)
class LivenessMemory:
    """What liveness learned of a device in earlier runs."""

    device_id: str
    expected_interval_s: float | None
    measurements: frozenset[str]  # what it has ever reported (its last value of each is kept)


def liveness_memory(db: sqlite_utils.Database) -> list[LivenessMemory]:
    measured: dict[str, set[str]] = {}
    for device_id, measurement in db.execute(
        "SELECT device_id, measurement FROM device_state"
    ).fetchall():
        measured.setdefault(device_id, set()).add(measurement)
    return [
        LivenessMemory(device_id, interval, frozenset(measured.get(device_id, ())))
        for device_id, interval in db.execute(
            "SELECT id, expected_interval_s FROM devices WHERE origin != 'removed'"
        ).fetchall()
    ]


def device_table(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every known device with its last values (for `homeguard-hub sensors`)."""
    devices = [
        dict(
            zip(
                (
                    "id",
                    "adapter",
                    "name",
                    "location",
                    "role",
                    "model",
                    "origin",
                    "last_seen",
                    "online",
                    "health",
                    "expected_interval_s",
                    "timeout_s",
                ),
                row,
                strict=True,
            )
        )
        for row in db.execute(
            "SELECT id, adapter, name, location, role, model, origin, last_seen, online, health, "
            "expected_interval_s, timeout_s FROM devices WHERE origin != 'removed' ORDER BY id"
        ).fetchall()
    ]
    state: dict[str, dict[str, Any]] = {}
    for device_id, measurement, at, value, text in db.execute(
        "SELECT device_id, measurement, at, value, text FROM device_state"
    ).fetchall():
        state.setdefault(device_id, {})[measurement] = {
            "value": text if text is not None else value,
            "at": at,
        }
    for d in devices:
        d["online"] = None if d["online"] is None else bool(d["online"])
        d["readings"] = state.get(d["id"], {})
    return devices
