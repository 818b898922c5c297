"""The store: revisions with their outbox rows, migrations, a corrupt file, a full disk, a database
locked by another process."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from hub.bus import Bus
from hub.events import IncidentChanged, IncidentKey, IncidentReport
from hub.incident import ActionKind, ActionOutcome, IncidentAction, Status
from hub.incident_service import IncidentService
from hub.store import DbWorker, open_database
from hub.store import incidents as repo
from hub.store.db import DB_NAME, MIGRATIONS
from tests.task_support import background


def _report(at: float, sensor: str = "kitchen-leak", **kw: object) -> IncidentReport:
    return IncidentReport(
        key=IncidentKey.WATER_LEAK,
        emergency_type="water_damage",
        severity="critical",
        title=str(kw.pop("title", "Water leak at kitchen")),
        location="kitchen",
        source_id="water_leak",
        source_version="1",
        at=at,
        sensors=(sensor,),
        **kw,  # type: ignore[arg-type]
    )


def test_each_change_is_a_revision_with_its_outbox_row(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    first = repo.apply_report(db, _report(100.0), "hub-1")
    assert first is not None
    assert first.revision == 1
    assert repo.apply_report(db, _report(101.0), "hub-1") is None  # nothing new: no revision
    action = IncidentAction(ActionKind.CLOSE_VALVE, "main-valve", 102.0, ActionOutcome.OK)
    second = repo.apply_report(db, _report(102.0, actions=(action,), title=""), "hub-1")
    assert second is not None
    assert second.revision == 2
    assert second.id == first.id
    assert second.title == "Water leak at kitchen"
    resolved = repo.change_status(db, first.id, Status.RESOLVED, 103.0)
    assert resolved.revision == 3
    assert resolved.resolved_at == 103.0
    rows = db.execute("SELECT ref_id, revision, priority FROM outbox ORDER BY seq").fetchall()
    assert rows == [(first.id, 1, 0), (first.id, 2, 0), (first.id, 3, 0)]
    # Once resolved, a new leak is a new incident.
    third = repo.apply_report(db, _report(104.0), "hub-1")
    assert third is not None
    assert third.id != first.id
    assert third.revision == 1


def test_a_follow_up_after_the_incident_was_resolved_joins_it_and_opens_no_other(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path)
    first = repo.apply_report(db, _report(100.0), "hub-1")
    assert first is not None
    repo.change_status(db, first.id, Status.RESOLVED, 101.0)  # resolved before the valve answers
    action = IncidentAction(ActionKind.CLOSE_VALVE, "main-valve", 160.0, ActionOutcome.TIMEOUT)
    late = repo.apply_report(db, _report(160.0, actions=(action,), title=""), "hub-1")
    assert late is not None
    assert late.id == first.id
    assert late.status is Status.RESOLVED
    assert late.actions == (action,)
    assert late.title == "Water leak at kitchen"
    assert [i.id for i in repo.list_incidents(db)] == [first.id]


def test_incident_found_by_unique_prefix(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    incident = repo.apply_report(db, _report(1.0), "hub-1")
    assert incident is not None
    assert repo.get_incident(db, incident.id[:6]) == incident
    assert repo.get_incident(db, incident.id[:3]) is None  # too short to be taken as a prefix


def test_migrations_run_once_and_record_the_version(tmp_path: Path) -> None:
    open_database(tmp_path).conn.close()
    db = open_database(tmp_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_corrupt_database_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    db = open_database(tmp_path)
    assert repo.list_incidents(db) == []
    aside = list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")


def _fill_disk(db: Any) -> None:
    """Cap the file at its size, then use up its free pages: SQLite now answers SQLITE_FULL."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    fillers = (
        "INSERT INTO outbox (kind, ref_id, revision, priority, body, created_at, delivered_at) "
        "VALUES ('filler', 'x', 0, 9, hex(randomblob(16)), 0, 0)",
        "INSERT INTO incidents (id, key, revision, status, severity, emergency_type, detected_at, "
        "updated_at, body) VALUES (hex(randomblob(16)), 'filler', 0, 'resolved', '', '', 0, 0, '')",
    )
    for filler in fillers:
        with contextlib.suppress(sqlite3.OperationalError):
            for _ in range(100_000):
                db.execute(filler)


def _free_disk(db: Any) -> None:
    db.execute("DELETE FROM outbox WHERE kind = 'filler'")
    db.execute("DELETE FROM incidents WHERE key = 'filler'")
    db.execute("PRAGMA max_page_count = 1073741823")


async def test_full_disk_delays_the_incident_but_never_loses_it(tmp_path: Path) -> None:
    bus = Bus()
    changes = bus.subscribe("test", (IncidentChanged,))
    async with DbWorker(tmp_path) as db:
        service = IncidentService(bus=bus, db=db, hub_id="hub-1")
        await db.run(_fill_disk)
        task = asyncio.create_task(service.run())
        try:
            bus.publish(_report(1.0))
            await asyncio.wait_for(service.stalled.wait(), 10)
            assert service.last_error is not None
            assert "StoreFullError" in service.last_error
            assert len(changes) == 0
            await db.run(_free_disk)
            await asyncio.wait_for(changes.wait(), 60)
            (changed,) = changes.drain()
            assert changed.incident.revision == 1
            assert service.last_error is None
            assert not service.stalled.is_set()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(repo.list_incidents(open_database(tmp_path))) == 1


def _short_busy_timeout(db: Any) -> None:
    db.execute("PRAGMA busy_timeout = 50")  # the hub waits 10 s; the test need not


async def test_a_database_locked_by_another_process_delays_the_incident_but_never_loses_it(
    tmp_path: Path,
) -> None:
    bus = Bus()
    changes = bus.subscribe("test", (IncidentChanged,))
    async with DbWorker(tmp_path) as db:
        await db.run(_short_busy_timeout)
        other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
        service = IncidentService(bus=bus, db=db, hub_id="hub-1")
        with contextlib.closing(other):
            other.execute("BEGIN IMMEDIATE")  # e.g. someone's sqlite3 shell, mid-write
            async with background(service.run()) as task:
                bus.publish(_report(1.0))
                await asyncio.wait_for(service.stalled.wait(), 10)
                assert service.last_error is not None
                assert "StoreError" in service.last_error
                assert "locked" in service.last_error
                assert not task.done()  # the daemon's task group would have ended with it
                other.execute("ROLLBACK")
                await asyncio.wait_for(changes.wait(), 60)
                (changed,) = changes.drain()
                assert changed.incident.revision == 1
    assert len(repo.list_incidents(open_database(tmp_path))) == 1
