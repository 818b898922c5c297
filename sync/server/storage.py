"""The reference server's SQLite storage, and the condition that wakes long polls.

One connection, shared by the handler threads under one lock; the long-poll condition is built on
that same lock, so an update cannot be queued between a poller's query and its wait.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["ItemResult", "Storage", "StoredIncident", "cursor_of", "parse_cursor"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    hub_id TEXT NOT NULL,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (hub_id, id, revision)
);
CREATE TABLE IF NOT EXISTS heartbeats (
    hub_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry (
    hub_id TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    measurement TEXT NOT NULL,
    period_start TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (hub_id, sensor_id, measurement, period_start)
);
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hub_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_by_hub ON updates (hub_id, seq);
"""

#: Most updates in one answer to GET /updates; the hub asks again with `next`.
MAX_UPDATES_PER_ANSWER = 100


def cursor_of(seq: int) -> str:
    """The opaque cursor the hub sees for an update's sequence number."""
    return str(seq)


def parse_cursor(cursor: str) -> int | None:
    """The sequence number of a cursor this server issued; None if it is not one."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        return None
    return int(cursor)


class ItemResult(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class StoredIncident:
    id: str
    revision: int
    status: str | None
    body: dict[str, Any]


class Storage:
    """Thread-safe access to the server's database. Close it when done."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._polling: dict[str, int] = {}
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def stop_polls(self) -> None:
        """Answer every waiting long poll now, and every later one at once (the server stops)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def close(self) -> None:
        self.stop_polls()
        with self._lock:
            self._db.close()

    # -- incidents ---------------------------------------------------------------------------

    def upsert_incident(
        self, hub_id: str, incident_id: str, revision: int, body: bytes
    ) -> ItemResult:
        with self._lock:
            row = self._db.execute(
                "SELECT max(revision) FROM incidents WHERE hub_id = ? AND id = ?",
                (hub_id, incident_id),
            ).fetchone()
            stored: int | None = row[0]
            if stored is not None and revision == stored:
                return ItemResult.DUPLICATE
            if stored is not None and revision < stored:
                return ItemResult.STALE
            self._db.execute(
                "INSERT INTO incidents (hub_id, id, revision, body, received_at) VALUES (?, ?, ?, ?, ?)",
                (hub_id, incident_id, revision, body.decode(), self._clock()),
            )
            return ItemResult.ACCEPTED

    def incidents(self, hub_id: str) -> list[StoredIncident]:
        """The newest stored revision of each incident of a hub, oldest incident first."""
        with self._lock:
            rows = self._db.execute(
                """SELECT i.id, i.revision, i.body FROM incidents i
                   JOIN (SELECT id, max(revision) AS revision, min(received_at) AS first
                         FROM incidents WHERE hub_id = ? GROUP BY id) newest
                   ON i.id = newest.id AND i.revision = newest.revision
                   WHERE i.hub_id = ? ORDER BY newest.first, i.id""",
                (hub_id, hub_id),
            ).fetchall()
        result = []
        for incident_id, revision, text in rows:
            body = json.loads(text)
            status = body.get("status")
            result.append(
                StoredIncident(
                    incident_id, revision, status if isinstance(status, str) else None, body
                )
            )
        return result

    def stored_revisions(self, hub_id: str) -> list[tuple[str, int]]:
        """Every (id, revision) ever accepted for a hub, in the order they were stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, revision FROM incidents WHERE hub_id = ? ORDER BY rowid", (hub_id,)
            ).fetchall()
        return [(str(i), int(r)) for i, r in rows]

    # -- heartbeat and telemetry -------------------------------------------------------------

    def record_heartbeat(self, hub_id: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO heartbeats (hub_id, body, received_at) VALUES (?, ?, ?)",
                (hub_id, json.dumps(body), self._clock()),
            )

    def last_heartbeat(self, hub_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM heartbeats WHERE hub_id = ?", (hub_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def upsert_rollups(self, hub_id: str, rollups: list[dict[str, Any]]) -> int:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    """INSERT OR REPLACE INTO telemetry
                       (hub_id, sensor_id, measurement, period_start, body) VALUES (?, ?, ?, ?, ?)""",
                    [
                        (hub_id, r["sensor_id"], r["measurement"], r["period_start"], json.dumps(r))
                        for r in rollups
                    ],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(rollups)

    def telemetry(self, hub_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                """SELECT body FROM telemetry WHERE hub_id = ?
                   ORDER BY sensor_id, measurement, period_start""",
                (hub_id,),
            ).fetchall()
        return [dict(json.loads(text)) for (text,) in rows]

    # -- updates and the long poll -----------------------------------------------------------

    def queue_update(self, hub_id: str, update: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Store an update for a hub, give it the next cursor, and wake its long polls."""
        with self._changed:
            seq = self._db.execute(
                "INSERT INTO updates (hub_id, body) VALUES (?, '{}')", (hub_id,)
            ).lastrowid
            assert seq is not None
            cursor = cursor_of(seq)
            body = {"cursor": cursor, **{k: v for k, v in update.items() if k != "cursor"}}
            self._db.execute("UPDATE updates SET body = ? WHERE seq = ?", (json.dumps(body), seq))
            self._changed.notify_all()
        return cursor, body

    def wait_for_updates(
        self, hub_id: str, after: int, wait_s: float
    ) -> tuple[list[dict[str, Any]], int]:
        """Updates after `after`, waiting up to `wait_s` for one; and the sequence to resume from."""
        deadline = time.monotonic() + wait_s
        with self._changed:
            self._polling[hub_id] = self._polling.get(hub_id, 0) + 1
            self._changed.notify_all()
            try:
                return self._poll(hub_id, after, deadline)
            finally:
                self._polling[hub_id] -= 1

    def wait_for_pollers(self, hub_id: str, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` long polls of a hub are waiting (for tests)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or self._polling.get(hub_id, 0) >= count, timeout_s
            )

    def _poll(self, hub_id: str, after: int, deadline: float) -> tuple[list[dict[str, Any]], int]:
        while True:
            if self._closed:
                return [], after
            rows = self._db.execute(
                "SELECT seq, body FROM updates WHERE hub_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (hub_id, after, MAX_UPDATES_PER_ANSWER),
            ).fetchall()
            if rows:
                return [dict(json.loads(body)) for _, body in rows], int(rows[-1][0])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return [], after
            self._changed.wait(remaining)
