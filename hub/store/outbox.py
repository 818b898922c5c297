"""The outbox as the cloud sync reads it: bounded pages of what is pending, delivery marks, dead
letters, telemetry rollups and their budget, and the sync key/value state.

Every function takes the database as its first argument and runs on the `DbWorker` thread. Nothing
here reads the whole backlog: pages are bounded, counts are done by SQLite.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from hub.clock import rfc3339
from hub.measurements import UNITS, Measurement
from hub.store.db import transaction
from hub.store.incidents import OUTBOX_KIND_INCIDENT, PRIORITY_CRITICAL, PRIORITY_INCIDENT

#: Telemetry goes after every incident.
PRIORITY_TELEMETRY = 9
OUTBOX_KIND_TELEMETRY = "telemetry"
ROLLUP_PERIOD_S = 3600

__all__ = [
    "OUTBOX_KIND_INCIDENT",
    "OUTBOX_KIND_TELEMETRY",
    "PRIORITY_CRITICAL",
    "PRIORITY_INCIDENT",
    "PRIORITY_TELEMETRY",
    "DeadLetter",
    "Item",
]

# State keys of `sync_state` (JSON values).
STATE_CURSOR = "updates_cursor"
STATE_TELEMETRY_DROPPED = "telemetry_dropped"
STATE_ROLLUP_UNTIL = "rollups_until"


@dataclass(frozen=True, slots=True)
class Item:
    """One pending outbox row (its body is the exact JSON to send)."""

    seq: int
    kind: str
    ref_id: str
    revision: int
    body: str
    size: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    kind: str
    ref_id: str
    revision: int
    reason: str
    failed_at: float


# -- reading the backlog ----------------------------------------------------------------------

_PENDING = """
SELECT seq, kind, ref_id, revision, body, length(CAST(body AS BLOB)) FROM outbox AS o
WHERE delivered_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM outbox AS n
    WHERE n.delivered_at IS NULL AND n.kind = o.kind AND n.ref_id = o.ref_id
      AND n.revision > o.revision
)
ORDER BY priority, seq
LIMIT ?
"""


def next_batch(db: sqlite_utils.Database, max_items: int, max_bytes: int) -> list[Item]:
    """The next batch to send: rows of one kind, highest priority first, oldest first, each the
    newest pending revision of its incident; at most `max_items` and `max_bytes` of bodies (a single
    row larger than that comes alone, so the caller can learn it is too large)."""
    out: list[Item] = []
    total = 0
    seen: set[str] = set()
    for seq, kind, ref_id, revision, body, size in db.execute(_PENDING, [max_items]).fetchall():
        if out and kind != out[0].kind:
            break
        if ref_id in seen:
            continue
        if out and total + size + 1 > max_bytes:
            break
        seen.add(ref_id)
        out.append(Item(seq, kind, ref_id, revision, body, size))
        total += size + 1
    return out


def settle(
    db: sqlite_utils.Database,
    delivered: list[Item],
    rejected: list[tuple[Item, str]],
    at: float,
) -> None:
    """In one transaction: mark delivered items (and every older pending revision of them) as
    delivered, and move rejected ones to the dead letters with the server's reason."""
    with transaction(db):
        db.conn.executemany(
            "UPDATE outbox SET delivered_at = ? WHERE kind = ? AND ref_id = ? AND revision <= ? "
            "AND delivered_at IS NULL",
            [(at, i.kind, i.ref_id, i.revision) for i in delivered],
        )
        for item, reason in rejected:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, kind, ref_id, revision, body, reason, "
                "created_at, failed_at) SELECT seq, kind, ref_id, revision, body, ?, created_at, ? "
                "FROM outbox WHERE seq = ?",
                [reason, at, item.seq],
            )
            # Not retried unchanged: this revision and the older ones it supersedes leave the
            # queue. A later revision of the same incident is a change, and is sent as usual.
            db.execute(
                "DELETE FROM outbox WHERE kind = ? AND ref_id = ? AND revision <= ? "
                "AND delivered_at IS NULL",
                [item.kind, item.ref_id, item.revision],
            )


def prune_delivered(db: sqlite_utils.Database, before: float) -> int:
    """Forget delivered rows older than `before` (the outbox is a queue, not an archive)."""
    with transaction(db):
        cur = db.execute(
            "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", [before]
        )
    return int(cur.rowcount)


def depth_by_kind(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """Pending rows per kind, with the creation time of the oldest."""
    return {
        kind: {"pending": int(count), "oldest_created_at": oldest}
        for kind, count, oldest in db.execute(
            "SELECT kind, count(*), min(created_at) FROM outbox WHERE delivered_at IS NULL "
            "GROUP BY kind ORDER BY kind"
        ).fetchall()
    }


def pending_count(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])


def dead_letters(db: sqlite_utils.Database, limit: int = 50) -> list[DeadLetter]:
    return [
        DeadLetter(*row)
        for row in db.execute(
            "SELECT seq, kind, ref_id, revision, reason, failed_at FROM dead_letters "
            "ORDER BY failed_at DESC, seq DESC LIMIT ?",
            [limit],
        ).fetchall()
    ]


def dead_letter_count(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


# -- telemetry ----------------------------------------------------------------------------------


def hourly_rollups(db: sqlite_utils.Database, start: float, end: float) -> list[dict[str, Any]]:
    """min/max/mean/last/count per sensor and numeric measurement for each whole hour in
    [start, end) (both on hour boundaries). Booleans and states are not rolled up."""
    out: list[dict[str, Any]] = []
    period = start
    while period < end:
        rows = db.execute(
            "SELECT device_id, measurement, count(*), min(value), max(value), avg(value), "
            "(SELECT r2.value FROM readings AS r2 WHERE r2.device_id = r.device_id "
            " AND r2.measurement = r.measurement AND r2.at >= ? AND r2.at < ? "
            " AND r2.text IS NULL AND r2.value IS NOT NULL ORDER BY r2.at DESC LIMIT 1) "
            "FROM readings AS r WHERE at >= ? AND at < ? AND text IS NULL AND value IS NOT NULL "
            "GROUP BY device_id, measurement ORDER BY device_id, measurement",
            [period, period + ROLLUP_PERIOD_S, period, period + ROLLUP_PERIOD_S],
        ).fetchall()
        for device_id, measurement, count, lo, hi, mean, last in rows:
            out.append(
                {
                    "sensor_id": device_id,
                    "measurement": measurement,
                    "unit": _unit(measurement),
                    "period_start": rfc3339(period),
                    "period_s": ROLLUP_PERIOD_S,
                    "count": int(count),
                    "min": lo,
                    "max": hi,
                    "mean": mean,
                    "last": last,
                }
            )
        period += ROLLUP_PERIOD_S
    return out


def _unit(measurement: str) -> str | None:
    try:
        return UNITS[Measurement(measurement)]
    except ValueError:
        return None


def oldest_reading_at(db: sqlite_utils.Database) -> float | None:
    row = db.execute("SELECT min(at) FROM readings").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def enqueue_telemetry(
    db: sqlite_utils.Database,
    rollups: list[dict[str, Any]],
    until: float,
    at: float,
    budget: int,
) -> int:
    """Queue rollups (wire JSON bodies) and record that hours before `until` are done, in one
    transaction; then keep the outbox within `budget` pending rows by dropping the oldest
    telemetry. Returns how many telemetry rows were dropped (also added to the state counter)."""
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO outbox (kind, ref_id, revision, priority, body, created_at) "
            "VALUES (?, ?, 1, ?, ?, ?)",
            [
                (
                    OUTBOX_KIND_TELEMETRY,
                    f"{r['sensor_id']}/{r['measurement']}/{r['period_start']}",
                    PRIORITY_TELEMETRY,
                    json.dumps(r, separators=(",", ":"), ensure_ascii=False),
                    at,
                )
                for r in rollups
            ],
        )
        _set(db, {STATE_ROLLUP_UNTIL: until})
        return _enforce_budget(db, budget)


def enforce_budget(db: sqlite_utils.Database, budget: int) -> int:
    with transaction(db):
        return _enforce_budget(db, budget)


def _enforce_budget(db: sqlite_utils.Database, budget: int) -> int:
    excess = pending_count(db) - budget
    if excess <= 0:
        return 0
    cur = db.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE delivered_at IS NULL "
        "AND kind = ? ORDER BY seq LIMIT ?)",
        [OUTBOX_KIND_TELEMETRY, excess],
    )
    dropped = int(cur.rowcount)
    if dropped:
        before = _get(db, STATE_TELEMETRY_DROPPED) or 0
        _set(db, {STATE_TELEMETRY_DROPPED: int(before) + dropped})
    return dropped


# -- what the heartbeat reports -----------------------------------------------------------------


def heartbeat_counts(db: sqlite_utils.Database, online_after: float) -> dict[str, Any]:
    """Outbox depth, open incidents, and sensors known / heard from since `online_after`."""
    open_incidents = db.execute(
        "SELECT count(*) FROM incidents WHERE status != 'resolved'"
    ).fetchone()[0]
    total, online = db.execute(
        "SELECT count(*), coalesce(sum(CASE WHEN online = 0 THEN 0 "
        "WHEN last_seen >= ? THEN 1 ELSE 0 END), 0) FROM devices WHERE origin != 'removed'",
        [online_after],
    ).fetchone()
    return {
        "outbox_depth": pending_count(db),
        "open_incidents": int(open_incidents),
        "sensors": {"total": int(total), "online": int(online)},
    }


# -- sync key/value state -----------------------------------------------------------------------


def get_state(db: sqlite_utils.Database, key: str) -> Any:
    return _get(db, key)


def set_state(db: sqlite_utils.Database, values: dict[str, Any]) -> None:
    with transaction(db):
        _set(db, values)


def read_state(db: sqlite_utils.Database) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM sync_state")}


def _get(db: sqlite_utils.Database, key: str) -> Any:
    row = db.execute("SELECT value FROM sync_state WHERE key = ?", [key]).fetchone()
    return None if row is None else json.loads(row[0])


def _set(db: sqlite_utils.Database, values: dict[str, Any]) -> None:
    db.conn.executemany(
        "INSERT INTO sync_state (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(k, json.dumps(v)) for k, v in values.items()],
    )
