"""The whole SyncService against the reference server: a 24-hour outage compressed by a virtual
clock, dispatch and maintenance updates, the cursor, the heartbeat and telemetry rollups."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.bus import Bus, Overflow, Subscription
from hub.clock import rfc3339
from hub.config import Config
from hub.contained import ServiceFaults, contained
from hub.errors import StoreError
from hub.events import IncidentChanged, MaintenanceTaskReceived, Reading
from hub.incident import DispatchStatus, Incident, Status
from hub.measurements import Measurement
from hub.store import DbWorker, open_database, outbox
from hub.store import incidents as incident_repo
from hub.store import maintenance as maintenance_repo
from hub.store import readings as readings_repo
from hub.store.db import MIGRATIONS
from sync.link import LinkState
from sync.server import RunningServer
from sync.service import SyncService
from tests.helpers import HeldPause
from tests.sync_support import (
    HUB,
    FakeClock,
    Outage,
    read_store,
    sync_config,
    time_flows,
    write_backlog,
)

pytestmark = pytest.mark.timeout(90)

HOUR = 3600.0


@contextlib.asynccontextmanager
async def running(
    config: Config, clock: FakeClock, bus: Bus, **kw: Any
) -> AsyncIterator[SyncService]:
    async with DbWorker(config.hub.data_dir) as db:
        service = SyncService(
            config=config, bus=bus, db=db, clock=clock, sleep=clock.sleep, poll_wait_s=1, **kw
        )
        task = asyncio.create_task(service.run(), name="sync")
        try:
            await asyncio.wait_for(service.ready.wait(), 10)
            yield service
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def drained(service: SyncService, clock: FakeClock) -> None:
    assert service.drainer is not None
    async with time_flows(clock), asyncio.timeout(60):
        await service.drainer.drained()


async def test_a_24_hour_outage_then_recovery_delivers_every_incident_once(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    net = Outage()
    net.down = True
    bus = Bus()
    newest: dict[str, int] = {}
    start = clock.t
    async with running(config, clock, bus, transport=net) as service:
        assert service.drainer is not None
        for hour in range(24):
            # An hour of incidents (50 incidents, 4 revisions each), written as the hub writes them.
            chunk = write_backlog(
                data_dir, incidents=50, revisions=4, start=clock.t, span_s=HOUR * 0.9
            )
            newest.update(chunk)
            bus.publish(IncidentChanged(_incident(data_dir, next(iter(chunk))), clock.t))
            end = start + (hour + 1) * HOUR
            while clock.t < end:
                await clock.next_wakeup()
        assert clock.t - start >= 24 * HOUR
        assert service.link.state is LinkState.OFFLINE
        assert net.refused > 24 * 10  # it kept trying, with backoff...
        assert max(clock.slept_by("sync-drainer")) <= 300  # ...capped at five minutes
        assert cloud.stored_revisions(HUB) == []
        assert len(newest) == 1200
        db = open_database(data_dir)
        assert outbox.pending_count(db) == 4800
        db.conn.close()

        net.down = False
        before = service.drainer.requests
        await drained(service, clock)
        assert service.link.state is LinkState.ONLINE
        assert service.drainer.requests - before == 6  # 1,200 incidents in batches of 200

    stored = cloud.stored_revisions(HUB)
    assert len(stored) == len(set(stored)) == 1200  # no duplicates
    assert dict(stored) == newest  # every incident, only its newest revision
    db = open_database(data_dir)
    assert outbox.pending_count(db) == 0


_TASK = {
    "id": "t-1",
    "title": "Flush the water heater",
    "system": "water_heater",
    "due": "2026-12-01",
    "every_days": 365,
    "priority": "medium",
}


def _incident(data_dir: Path, incident_id: str) -> Incident:
    db = open_database(data_dir)
    try:
        found = incident_repo.get_incident(db, incident_id)
    finally:
        db.conn.close()
    assert found is not None
    return found


def _subscribe(bus: Bus) -> Subscription[Any]:
    return bus.subscribe(
        "test", (IncidentChanged, MaintenanceTaskReceived), overflow=Overflow.KEEP_ALL
    )


async def _next(sub: Subscription[Any], kind: type[Any]) -> Any:
    async with asyncio.timeout(15):
        while True:
            await sub.wait()
            for event in sub.drain():
                if isinstance(event, kind):
                    return event


async def _poller_waiting(cloud: RunningServer) -> None:
    assert await asyncio.to_thread(cloud.wait_for_long_polls, HUB, 1, 10.0)


def _cursor(data_dir: Path) -> Any:
    return read_store(data_dir, lambda db: outbox.get_state(db, outbox.STATE_CURSOR))


async def test_dispatch_updates_become_revisions_and_reach_the_cloud(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    (incident_id, revision), *_ = write_backlog(
        config.hub.data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus) as service:
        await drained(service, clock)
        assert cloud.stored_revisions(HUB) == [(incident_id, revision)]
        eta = rfc3339(clock.t + 1800)
        cursor = cloud.queue_update(
            HUB,
            {
                "type": "dispatch",
                "incident_id": incident_id,
                "status": "en_route",
                "contractor": {
                    "id": "c-7",
                    "name": "Ace Plumbing",
                    "phone": "+15550100",
                    "eta": eta,
                },
                "note": "bring a wet vac",
            },
        )
        changed = (await _next(sub, IncidentChanged)).incident
        assert changed.id == incident_id
        assert changed.revision == revision + 1
        assert changed.status is Status.DISPATCHED
        assert changed.dispatch.status is DispatchStatus.EN_ROUTE
        assert changed.dispatch.contractor.name == "Ace Plumbing"
        assert rfc3339(changed.dispatch.eta) == eta
        assert changed.dispatch.note == "bring a wet vac"
        await _poller_waiting(cloud)  # back for more: the cursor is stored
        assert _cursor(config.hub.data_dir) == cursor

        cloud.queue_update(
            HUB, {"type": "dispatch", "incident_id": incident_id, "status": "cancelled"}
        )
        cancelled = (await _next(sub, IncidentChanged)).incident
        assert cancelled.status is Status.DISPATCHED  # cancelled leaves the status alone
        cloud.queue_update(
            HUB, {"type": "dispatch", "incident_id": incident_id, "status": "resolved"}
        )
        resolved = (await _next(sub, IncidentChanged)).incident
        assert resolved.status is Status.RESOLVED
        assert resolved.resolved_at is not None
        assert resolved.revision == revision + 3
        await drained(service, clock)
    (body,) = cloud.incidents(HUB)
    assert body["revision"] == revision + 3
    assert body["status"] == "resolved"
    assert body["dispatch"]["status"] == "resolved"


async def test_updates_apply_idempotently_from_an_old_cursor(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    (incident_id, revision), *_ = write_backlog(
        config.hub.data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    cloud.queue_update(
        HUB, {"type": "dispatch", "incident_id": incident_id, "status": "acknowledged"}
    )
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus):
        changed = (await _next(sub, IncidentChanged)).incident
        assert changed.status is Status.ACKNOWLEDGED
        await _poller_waiting(cloud)
    # As after a crash between applying and storing the cursor: the same update comes again.
    db = open_database(config.hub.data_dir)
    outbox.set_state(db, {outbox.STATE_CURSOR: None})
    db.conn.close()
    sub.drain()
    cloud.queue_update(HUB, {"type": "maintenance", "task": _TASK})  # applied after the dispatch
    async with running(config, clock, bus) as service:
        await _next(sub, MaintenanceTaskReceived)
        assert service.updates is not None
        assert service.updates.applied == 2
    assert not any(isinstance(e, IncidentChanged) for e in sub.drain())
    found = incident_repo.get_incident(open_database(config.hub.data_dir), incident_id)
    assert found is not None
    assert found.revision == revision + 1


async def test_the_cursor_is_stored_only_after_the_update_is_applied(
    tmp_path: Path,
    cloud: RunningServer,
    clock: FakeClock,
    secret: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    (incident_id, _), *_ = write_backlog(
        config.hub.data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    real = incident_repo.record_dispatch
    failures: list[str] = []

    def failing_once(*args: Any) -> Any:
        if not failures:
            failures.append("disk full")
            raise StoreError("disk full")
        return real(*args)

    monkeypatch.setattr(incident_repo, "record_dispatch", failing_once)
    cursor = cloud.queue_update(
        HUB, {"type": "dispatch", "incident_id": incident_id, "status": "on_site"}
    )
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus):
        await asyncio.wait_for(clock.sleeping("sync-updates"), 10)
        assert failures == ["disk full"]
        assert _cursor(config.hub.data_dir) is None  # not applied: not stored
        await clock.next_wakeup()
        changed = (await _next(sub, IncidentChanged)).incident
        assert changed.status is Status.DISPATCHED
        await _poller_waiting(cloud)
        assert _cursor(config.hub.data_dir) == cursor


def _kept(data_dir: Path) -> list[tuple[str, str, str]]:
    tasks = read_store(data_dir, maintenance_repo.kept)
    return [(k.task.id, k.task.title, k.task.due) for k in tasks]


async def _tasks(sub: Subscription[Any], n: int) -> list[MaintenanceTaskReceived]:
    return [await _next(sub, MaintenanceTaskReceived) for _ in range(n)]


async def test_maintenance_tasks_are_kept_and_go_to_the_bus(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    cloud.queue_update(HUB, {"type": "maintenance", "task": _TASK, "at": rfc3339(clock.t - 60)})
    moved = {**_TASK, "title": "Flush and descale the water heater", "due": "2026-12-15"}
    cloud.queue_update(HUB, {"type": "maintenance", "task": moved, "at": rfc3339(clock.t - 30)})
    pump = {"id": "t-2", "title": "Test the sump pump", "system": "plumbing", "due": "2026-11-30"}
    cursor = cloud.queue_update(
        HUB, {"type": "maintenance", "task": {**pump, "priority": "high", "every_runtime_h": 500}}
    )
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus):
        received = await _tasks(sub, 3)
        await _poller_waiting(cloud)
    assert [r.task.id for r in received] == ["t-1", "t-1", "t-2"]
    assert received[0].task.every_days == 365
    assert received[2].task.every_runtime_h == 500
    kept = [
        ("t-2", "Test the sump pump", "2026-11-30"),
        ("t-1", "Flush and descale the water heater", "2026-12-15"),  # the later version
    ]
    assert _kept(data_dir) == kept
    assert _cursor(data_dir) == cursor

    # As after a crash before the cursor was stored: all three come again, the older version of
    # t-1 after the newer one is kept. Nothing changes.
    db = open_database(data_dir)
    outbox.set_state(db, {outbox.STATE_CURSOR: None})
    db.conn.close()
    async with running(config, clock, bus):
        await _tasks(sub, 3)
        await _poller_waiting(cloud)
    assert _kept(data_dir) == kept


async def test_a_task_that_cannot_be_kept_holds_the_cursor_back(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    read_store(data_dir, lambda db: db.execute("DROP TABLE maintenance_tasks"))  # writes fail
    cursor = cloud.queue_update(HUB, {"type": "maintenance", "task": _TASK})
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus):
        await asyncio.wait_for(clock.sleeping("sync-updates"), 10)
        assert _cursor(data_dir) is None  # not kept: not applied, and the cursor stays
        assert sub.drain() == []
        read_store(data_dir, MIGRATIONS[3])  # the table is back
        await clock.next_wakeup()
        (received,) = await _tasks(sub, 1)
        await _poller_waiting(cloud)
        assert _cursor(data_dir) == cursor
    assert received.task.id == "t-1"
    assert _kept(data_dir) == [("t-1", "Flush the water heater", "2026-12-01")]


async def test_heartbeat_and_hourly_telemetry(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    db = open_database(data_dir)
    readings_repo.register_devices(
        db, [readings_repo.DeviceRow("basement", "native", "basement", None, None, None, "config")]
    )
    hour = clock.t - 2 * HOUR  # two whole hours ago
    values = [18.0, 21.0, 19.5]
    readings_repo.record(
        db,
        [
            Reading("basement", Measurement.TEMPERATURE, v, hour + 600 * i)
            for i, v in enumerate(values)
        ]
        + [Reading("basement", Measurement.WATER_LEAK, False, hour + 30)],
        [readings_repo.SeenUpdate("basement", clock.t - 10, None)],
    )
    db.conn.close()
    bus = Bus()
    async with running(config, clock, bus) as service:
        await asyncio.wait_for(clock.sleeping("sync-rollups"), 10)  # the rollups are queued
        await drained(service, clock)
        await asyncio.wait_for(clock.sleeping("sync-heartbeat"), 10)  # one beat went out
        beat = cloud.last_heartbeat(HUB)
        assert beat is not None
        assert beat["sensors"] == {"total": 1, "online": 1}
        assert service.heartbeat is not None
        assert service.heartbeat.sent >= 1
    rollups = cloud.telemetry(HUB)
    temperature = [r for r in rollups if r["measurement"] == "temperature"]
    assert len(temperature) == 1
    (r,) = temperature
    assert (r["count"], r["min"], r["max"], r["last"]) == (3, 18.0, 21.0, 19.5)
    assert r["mean"] == pytest.approx(19.5)
    assert r["unit"] == "°C"
    assert not [x for x in rollups if x["measurement"] == "water_leak"]


def test_telemetry_is_dropped_oldest_first_over_the_budget_and_incidents_never(
    tmp_path: Path,
) -> None:
    newest = write_backlog(tmp_path, incidents=30, revisions=2, start=1000.0, span_s=10)
    db = open_database(tmp_path)
    rollups = [
        {"sensor_id": "s", "measurement": "temperature", "period_start": f"p{n}", "n": n}
        for n in range(50)
    ]
    dropped = outbox.enqueue_telemetry(db, rollups, until=5000.0, at=2000.0, budget=80)
    assert dropped == 30  # 60 incident rows + 50 telemetry - 80
    left = [
        row[0]
        for row in db.execute(
            "SELECT ref_id FROM outbox WHERE kind = 'telemetry' ORDER BY seq"
        ).fetchall()
    ]
    assert left == [f"s/temperature/p{n}" for n in range(30, 50)]  # the oldest went
    # Incidents alone over the budget: all telemetry goes, no incident does.
    assert outbox.enforce_budget(db, 10) == 20
    depth = outbox.depth_by_kind(db)
    assert depth["incident"]["pending"] == 60
    assert "telemetry" not in depth
    assert outbox.get_state(db, outbox.STATE_TELEMETRY_DROPPED) == 50
    assert len(newest) == 30


def test_the_dispatch_mirror_survives_the_wire_and_repeats_change_nothing(tmp_path: Path) -> None:
    from hub.incident import Contractor, Dispatch, apply_dispatch, from_wire, to_wire

    (incident_id, _), *_ = write_backlog(
        tmp_path, incidents=1, revisions=2, start=1000.0, span_s=10
    ).items()
    incident = _incident(tmp_path, incident_id)
    dispatch = Dispatch(
        DispatchStatus.ON_SITE, 2000.0, Contractor("c-1", "Ace", "+1555", 2100.0), 2100.0, "hi"
    )
    changed = apply_dispatch(incident, dispatch, at=2001.0)
    assert changed is not None
    assert changed.status is Status.DISPATCHED  # resolved by the homeowner; dispatch reopens it
    assert changed.resolved_at is None
    assert from_wire(to_wire(changed), key=changed.key) == changed
    assert apply_dispatch(changed, dispatch, at=2002.0) is None  # the same update again
    older = Dispatch(DispatchStatus.ACKNOWLEDGED, 1500.0)
    assert apply_dispatch(changed, older, at=2003.0) is None  # an older one
    done = apply_dispatch(changed, Dispatch(DispatchStatus.RESOLVED, 2500.0), at=2501.0)
    assert done is not None
    assert (done.status, done.resolved_at) == (Status.RESOLVED, 2500.0)


class FailingHeartbeat(httpx.AsyncBaseTransport):
    """The real HTTP transport, except that one heartbeat meets an error nobody expected."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.heartbeats = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            self.heartbeats += 1
            if self.heartbeats == 2:
                raise RuntimeError("transport: something nobody expected")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_sync_stopped_by_an_unexpected_error_says_so_and_starts_again_where_it_was(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    newest = write_backlog(config.hub.data_dir, incidents=3, revisions=2, start=clock.t, span_s=60)
    net = FailingHeartbeat()
    pause = HeldPause()
    faults = ServiceFaults()
    async with DbWorker(config.hub.data_dir) as db:
        service = SyncService(
            config=config, bus=Bus(), db=db, clock=clock, sleep=clock.sleep, poll_wait_s=1,
            transport=net,
        )  # fmt: skip
        task = asyncio.create_task(contained("sync", service.run, faults, sleep=pause), name="sync")
        try:
            await asyncio.wait_for(service.ready.wait(), 10)
            await drained(service, clock)
            await asyncio.wait_for(clock.sleeping("sync-heartbeat"), 10)  # the first beat
            first = cloud.last_heartbeat(HUB)
            assert first is not None
            await clock.advance(60.0)  # the heartbeat period: the second beat fails
            await asyncio.wait_for(pause.paused.wait(), 10)
            stopped = service.status()
            assert stopped["state"] == "stopped"
            assert stopped["last_error"] == "RuntimeError: transport: something nobody expected"
            assert faults.stopped == {"sync": stopped["last_error"]}
            assert stopped["delivered"] == 3
            assert not service.link.online.is_set()

            pause.resume.set()
            await asyncio.wait_for(clock.sleeping("sync-heartbeat"), 10)  # beating again
            await asyncio.wait_for(service.link.online.wait(), 10)
            again = service.status()
            assert again["state"] == "online"
            assert again["delivered"] == 3  # counted since the hub started, not reset
            assert again["heartbeats"] == 2  # the first run's beat and this run's
            beat = cloud.last_heartbeat(HUB)
            assert beat is not None
            assert beat["uptime_s"] >= first["uptime_s"] + 60  # not as if the hub had rebooted
            assert faults.stopped == {}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert dict(cloud.stored_revisions(HUB)) == newest
