"""Opening the database: WAL, FULL sync, versioned migrations, and what to do with a corrupt file."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from hub.errors import StoreCorruptError, StoreError, StoreFullError

_log = logging.getLogger(__name__)

DB_NAME = "hub.db"


def _v1(db: sqlite_utils.Database) -> None:
    db["incidents"].create(  # type: ignore[union-attr]  # sqlite-utils returns Table | View
        {
            "id": str,
            "key": str,
            "revision": int,
            "status": str,
            "severity": str,
            "emergency_type": str,
            "detected_at": float,
            "updated_at": float,
            "body": str,
        },
        pk="id",
    )
    db["incidents"].create_index(["key", "status"])  # type: ignore[union-attr]
    db.execute(
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            ref_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            delivered_at REAL
        )"""
    )
    db.execute("CREATE INDEX outbox_pending ON outbox (delivered_at, priority, seq)")
    db.execute(
        """CREATE TABLE readings (
            device_id TEXT NOT NULL,
            measurement TEXT NOT NULL,
            at REAL NOT NULL,
            value REAL,
            text TEXT
        )"""
    )
    db.execute("CREATE INDEX readings_by_device ON readings (device_id, measurement, at)")
    db.execute("CREATE INDEX readings_by_time ON readings (at)")
    db.execute(
        """CREATE TABLE device_state (
            device_id TEXT NOT NULL,
            measurement TEXT NOT NULL,
            at REAL NOT NULL,
            value REAL,
            text TEXT,
            PRIMARY KEY (device_id, measurement)
        )"""
    )
    db.execute(
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY,
            adapter TEXT NOT NULL,
            name TEXT NOT NULL,
            location TEXT,
            role TEXT,
            model TEXT,
            origin TEXT NOT NULL,
            last_seen REAL,
            online INTEGER
        )"""
    )
    db.execute("CREATE TABLE hub_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _v2(db: sqlite_utils.Database) -> None:
    """Cloud sync: dead letters, the sync key/value state, and a lookup of pending revisions."""
    db.execute(
        """CREATE TABLE dead_letters (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            ref_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            body TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at REAL NOT NULL,
            failed_at REAL NOT NULL
        )"""
    )
    db.execute("CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # "Is there a newer pending revision of this incident?" without reading the backlog.
    db.execute(
        "CREATE INDEX outbox_pending_ref ON outbox (kind, ref_id, revision) "
        "WHERE delivered_at IS NULL"
    )
    db.execute(
        "CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL"
    )


def _v3(db: sqlite_utils.Database) -> None:
    """Learned liveness: each device's health and the report interval the hub learned for it."""
    db.execute("ALTER TABLE devices ADD COLUMN health TEXT")
    db.execute("ALTER TABLE devices ADD COLUMN expected_interval_s REAL")
    db.execute("ALTER TABLE devices ADD COLUMN timeout_s REAL")


def _v4(db: sqlite_utils.Database) -> None:
    """Maintenance tasks the cloud sent, by task id (`hub/store/maintenance.py`)."""
    db.execute(
        """CREATE TABLE maintenance_tasks (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            sent_at REAL NOT NULL,
            due TEXT NOT NULL
        )"""
    )


#: Schema migrations, in order; `PRAGMA user_version` is how many have run. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1, _v2, _v3, _v4)


def open_database(data_dir: Path) -> sqlite_utils.Database:
    """Open (creating or migrating) the hub's database in `data_dir`.

    A file that fails its integrity check is moved aside (never deleted) and a fresh database is
    started, because the hub must keep protecting the home; the error is logged for a person.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as err:
        raise StoreError(f"cannot make the data dir {data_dir}: {err.strerror}") from err
    path = data_dir / DB_NAME
    try:
        return _open(path)
    except StoreCorruptError as err:
        aside = path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        _log.error(
            "database %s is corrupt (%s); moved it to %s and started a new one", path, err, aside
        )
        return _open(path)


def _open(path: Path) -> sqlite_utils.Database:
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise StoreCorruptError(str(result[0] if result else "no answer"))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            db = sqlite_utils.Database(conn)
            _migrate(db)
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as err:
        raise convert(err) from err
    if path.stat().st_uid == os.geteuid():  # a CLI user of the hub's group may read, not chmod
        path.chmod(0o640)
    return db


def _migrate(db: sqlite_utils.Database) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(f"database schema {version} is newer than this hub ({len(MIGRATIONS)})")
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(db):
            migration(db)
            db.execute(f"PRAGMA user_version = {number:d}")
        _log.info("database migrated to schema %d", number)


class transaction:
    """`BEGIN IMMEDIATE ... COMMIT`, rolled back on any error; converts sqlite errors."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._conn = db.conn

    def __enter__(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as err:  # locked by another process past the busy timeout
            raise convert(err) from err

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._conn.execute("COMMIT")
                return
            except sqlite3.DatabaseError as err:
                self._rollback()
                raise convert(err) from err
        self._rollback()
        if isinstance(exc, sqlite3.DatabaseError):
            raise convert(exc) from exc

    def _rollback(self) -> None:
        # SQLite has already rolled back by itself after some errors (SQLITE_FULL among them).
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def convert(err: sqlite3.DatabaseError) -> StoreError:
    """Map a sqlite3 error to the store's error tree (by error code, never by message text)."""
    code = getattr(err, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return StoreFullError(str(err))
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptError(str(err))
    return StoreError(str(err))
