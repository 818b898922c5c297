"""A cloud that answers what the contract never allows must not stop the hub: every sync loop runs
in the daemon's one TaskGroup, so an exception escaping one takes the hub (and its leak protection)
down, and a cursor that never moves makes it crash again on every restart.

The cloud is the reference server, reached over real HTTP through `Tamper`, which rewrites some of
its answers on the way back: updates the hub cannot hold (times outside years 1-9999, times
without a zone, text that is not Unicode), and numbers that are not numbers in the answers to a
POST. An update like that is skipped and logged, and the cursor moves past it; an answer like that
is a server error, retried with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hub.bus import Bus, Overflow, Subscription
from hub.config import Config
from hub.events import IncidentChanged, MaintenanceTaskReceived
from hub.incident import DispatchStatus, Incident, Status
from hub.store import DbWorker, outbox
from hub.store import incidents as incident_repo
from sync.client import MAX_RETRY_AFTER_S
from sync.link import RETRY_CAP_S, LinkState
from sync.server import RunningServer
from sync.service import SyncService
from tests.sync_support import (
    HUB,
    FakeClock,
    read_store,
    rollup,
    sync_config,
    time_flows,
    write_backlog,
)

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

#: Rewrites a 200 answer: (the request, the answer's JSON) -> the body to send instead, or None
#: to let the answer through. It may change the JSON in place and return `dump(body)`.
Edit = Callable[[httpx.Request, Any], bytes | None]


def dump(body: Any) -> bytes:
    """JSON as Python writes it by default: NaN and Infinity included."""
    return json.dumps(body).encode()


class Tamper(httpx.AsyncBaseTransport):
    """The real transport to the reference server; `edit` may replace the body of a 200 answer
    before the client reads it (a cloud answering what the reference server never would), and
    `answer` may answer a request itself."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.edit: Edit = lambda _request, _body: None
        #: An answer of its own to a request, or None to pass it on (a gateway's 429).
        self.answer: Callable[[httpx.Request], httpx.Response | None] = lambda _request: None
        self.tampered: list[str] = []  # the path of each answer replaced

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        own = self.answer(request)
        if own is not None:
            self.tampered.append(request.url.path)
            return own
        response = await self.inner.handle_async_request(request)
        if response.status_code != 200:
            return response
        content = await response.aread()
        replaced = self.edit(request, json.loads(content))
        if replaced is not None:
            self.tampered.append(request.url.path)
            content = replaced
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=content)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _endpoint(request: httpx.Request) -> str:
    return request.url.path.rsplit("/", 1)[-1]


@contextlib.asynccontextmanager
async def running(
    config: Config, clock: FakeClock, bus: Bus, tamper: Tamper
) -> AsyncIterator[tuple[SyncService, asyncio.Task[None]]]:
    """The whole sync service (its loops in one TaskGroup, as in the daemon), through `tamper`."""
    async with DbWorker(config.hub.data_dir) as db:
        service = SyncService(
            config=config,
            bus=bus,
            db=db,
            clock=clock,
            sleep=clock.sleep,
            poll_wait_s=1,
            transport=tamper,
        )
        task = asyncio.create_task(service.run(), name="sync")
        try:
            await alive(task, service.ready.wait())
            yield service, task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def alive(service: asyncio.Task[None], awaitable: Awaitable[T], timeout_s: float = 20) -> T:
    """`awaitable`'s result, failing at once (with its error) if the service stops first."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.wait((waiter, service), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            waiter.cancel()
    if service.done():
        service.result()  # raises what stopped it
        pytest.fail("the sync service stopped")
    return waiter.result()


async def _poller_waiting(service: asyncio.Task[None], cloud: RunningServer) -> None:
    """Until the poller is back in a long poll: what it got before is applied, its cursor stored."""
    assert await alive(service, asyncio.to_thread(cloud.wait_for_long_polls, HUB, 1, 10.0))


def _subscribe(bus: Bus) -> Subscription[Any]:
    return bus.subscribe(
        "test", (IncidentChanged, MaintenanceTaskReceived), overflow=Overflow.KEEP_ALL
    )


async def _next_incident(sub: Subscription[Any]) -> Incident:
    while True:
        await sub.wait()
        for event in sub.drain():
            if isinstance(event, IncidentChanged):
                return event.incident


def _cursor(data_dir: Path) -> Any:
    return read_store(data_dir, lambda db: outbox.get_state(db, outbox.STATE_CURSOR))


def _incident(data_dir: Path, incident_id: str) -> Incident:
    found = read_store(data_dir, lambda db: incident_repo.get_incident(db, incident_id))
    assert found is not None
    return found


# -- updates the hub cannot hold ------------------------------------------------------------------

_TASK = {
    "id": "t-1",
    "title": "Flush the water heater",
    "system": "water_heater",
    "due": "2026-12-01",
    "priority": "medium",
}
_CONTRACTOR = {"id": "c-7", "name": "Ace Plumbing", "phone": "+15550100"}

#: What the cloud sends in the place of a good update: (its type, the fields that differ).
HOSTILE_UPDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "at without a zone, year 1": ("dispatch", {"at": "0001-01-01T00:00:00"}),
    "at without a zone": ("dispatch", {"at": "2026-11-27T10:00:00"}),
    "at before year 1 in UTC": ("dispatch", {"at": "0001-01-01T00:00:00+01:00"}),
    "at rounding into year 10000": ("dispatch", {"at": "9999-12-31T23:59:59.999999Z"}),
    "eta after year 9999 in UTC": (
        "dispatch",
        {"contractor": {**_CONTRACTOR, "eta": "9999-12-31T23:59:59-05:00"}},
    ),
    "note that is not Unicode": ("dispatch", {"note": "\ud800"}),
    "maintenance at without a zone, year 1": ("maintenance", {"at": "0001-01-01T00:00:00"}),
    "maintenance at after year 9999 in UTC": ("maintenance", {"at": "9999-12-31T23:59:59-05:00"}),
    "maintenance task id that is not Unicode": ("maintenance", {"task": {**_TASK, "id": "\udfff"}}),
}


@pytest.mark.parametrize("case", list(HOSTILE_UPDATES))
async def test_an_update_the_hub_cannot_hold_is_skipped_and_the_cursor_moves_past_it(
    tmp_path: Path,
    cloud: RunningServer,
    clock: FakeClock,
    secret: bytes,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.updates")
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    (incident_id, revision), *_ = write_backlog(
        data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    kind, fields = HOSTILE_UPDATES[case]
    good = (
        {"type": "dispatch", "incident_id": incident_id, "status": "en_route"}
        if kind == "dispatch"
        else {"type": "maintenance", "task": _TASK}
    )
    hostile_cursor = cloud.queue_update(HUB, good)
    tamper = Tamper()

    def hostile(request: httpx.Request, body: Any) -> bytes | None:
        if _endpoint(request) != "updates":
            return None
        for update in body["updates"]:
            if update["cursor"] == hostile_cursor:
                update.update(fields)
                return dump(body)
        return None

    tamper.edit = hostile
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus, tamper) as (service, task):
        await _poller_waiting(task, cloud)
        assert tamper.tampered  # the hostile update went out
        assert service.updates is not None
        assert (service.updates.skipped, service.updates.applied) == (1, 0)
        assert _cursor(data_dir) == hostile_cursor  # moved past it
        assert "ignoring an update the hub does not understand" in caplog.text
        assert sub.drain() == []
        assert _incident(data_dir, incident_id).revision == revision

        # A good update after it is applied.
        good_cursor = cloud.queue_update(
            HUB, {"type": "dispatch", "incident_id": incident_id, "status": "on_site"}
        )
        changed = await alive(task, _next_incident(sub))
        assert changed.id == incident_id
        assert changed.revision == revision + 1
        assert changed.status is Status.DISPATCHED
        assert changed.dispatch is not None
        assert changed.dispatch.status is DispatchStatus.ON_SITE
        await _poller_waiting(task, cloud)
        assert _cursor(data_dir) == good_cursor
        assert (service.updates.skipped, service.updates.applied) == (1, 1)
        assert not task.done()  # the hub kept running


# -- answers to GET /updates that are not answers ---------------------------------------------


def _next_not_unicode(_request: httpx.Request, body: Any) -> bytes | None:
    body["next"] = "\ud800"
    return dump(body)


def _nested_too_deep(_request: httpx.Request, _body: Any) -> bytes | None:
    return b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("answer", [_next_not_unicode, _nested_too_deep])
async def test_a_malformed_updates_answer_is_a_server_error_and_retried(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes, answer: Edit
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    (incident_id, revision), *_ = write_backlog(
        data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    cursor = cloud.queue_update(
        HUB, {"type": "dispatch", "incident_id": incident_id, "status": "acknowledged"}
    )
    tamper = Tamper()

    def once(request: httpx.Request, body: Any) -> bytes | None:
        if _endpoint(request) != "updates" or tamper.tampered:
            return None
        return answer(request, body)

    tamper.edit = once
    bus = Bus()
    sub = _subscribe(bus)
    async with running(config, clock, bus, tamper) as (service, task):
        wait = await alive(task, clock.sleeping("sync-updates"))  # backing off
        assert 0 < wait <= RETRY_CAP_S
        assert service.link.last_error is not None
        assert service.link.last_error.startswith("ServerError")
        assert _cursor(data_dir) is None  # nothing of that answer was kept
        await clock.next_wakeup("sync-updates")
        changed = await alive(task, _next_incident(sub))
        assert changed.status is Status.ACKNOWLEDGED
        assert changed.revision == revision + 1
        await _poller_waiting(task, cloud)
        assert _cursor(data_dir) == cursor
        assert service.link.state is LinkState.ONLINE
    assert len(tamper.tampered) == 1


# -- answers to a POST with numbers that are not numbers --------------------------------------

#: A revision or count as a cloud gone wrong may send it: Python's json reads NaN and Infinity.
NOT_COUNTS: list[Any] = [math.inf, -math.inf, math.nan, 10**400, True, "2", 2.5, -1, None, [2]]


async def _drained(service: SyncService, task: asyncio.Task[None], clock: FakeClock) -> None:
    assert service.drainer is not None
    async with time_flows(clock):
        await alive(task, service.drainer.drained(), timeout_s=40)


async def test_an_incidents_answer_with_a_revision_that_is_not_one_is_a_server_error(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    newest = write_backlog(data_dir, incidents=3, revisions=2, start=clock.t - 60, span_s=10)
    assert set(newest.values()) == {2}  # so "2", 2.5 and 2.0 would pass for it
    tamper = Tamper()
    sent: list[Any] = []

    def revision(request: httpx.Request, body: Any) -> bytes | None:
        if _endpoint(request) != "incidents" or len(sent) == len(NOT_COUNTS):
            return None
        value = NOT_COUNTS[len(sent)]
        sent.append(value)
        for result in body["results"]:
            result["revision"] = value
        return dump(body)

    tamper.edit = revision
    async with running(config, clock, Bus(), tamper) as (service, task):
        await _drained(service, task, clock)
        assert service.drainer is not None
        assert service.drainer.dead_lettered == 0
        assert service.link.state is LinkState.ONLINE
        assert service.link.last_error is not None
        assert "malformed incidents answer" in service.link.last_error
        assert not task.done()
    assert len(sent) == len(NOT_COUNTS)
    waits = clock.slept_by("sync-drainer")
    assert len(waits) == len(NOT_COUNTS)  # each one a server error: one backoff round each
    assert all(0 < w <= RETRY_CAP_S for w in waits)
    # The server stored them from the first request; the retries found them there.
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())
    assert read_store(data_dir, outbox.pending_count) == 0
    assert read_store(data_dir, outbox.dead_letters) == []


async def test_a_telemetry_answer_with_a_count_that_is_not_one_is_a_server_error(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    rollups = [rollup(f"s-{n}", "2026-11-25T22:00:00Z") for n in range(3)]

    def queue(db: Any) -> int:
        return outbox.enqueue_telemetry(db, rollups, until=clock.t, at=clock.t, budget=1000)

    assert read_store(data_dir, queue) == 0
    tamper = Tamper()
    sent: list[Any] = []

    def accepted(request: httpx.Request, body: Any) -> bytes | None:
        if _endpoint(request) != "telemetry" or len(sent) == len(NOT_COUNTS):
            return None
        sent.append(NOT_COUNTS[len(sent)])
        body["accepted"] = sent[-1]
        return dump(body)

    tamper.edit = accepted
    async with running(config, clock, Bus(), tamper) as (service, task):
        await _drained(service, task, clock)
        assert service.link.state is LinkState.ONLINE
        assert service.link.last_error is not None
        assert "malformed telemetry answer" in service.link.last_error
        assert not task.done()
    assert len(sent) == len(NOT_COUNTS)
    waits = clock.slept_by("sync-drainer")
    assert len(waits) == len(NOT_COUNTS)
    assert all(0 < w <= RETRY_CAP_S for w in waits)
    assert len(cloud.telemetry(HUB)) == 3
    assert read_store(data_dir, outbox.pending_count) == 0


async def test_a_rejection_whose_reason_is_not_unicode_is_still_a_dead_letter(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    data_dir = config.hub.data_dir
    (incident_id, _), *_ = write_backlog(
        data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    ).items()
    tamper = Tamper()

    def rejected(request: httpx.Request, body: Any) -> bytes | None:
        if _endpoint(request) != "incidents":
            return None
        for result in body["results"]:
            result.update(result="rejected", error="bad \ud800 byte")
        return dump(body)

    tamper.edit = rejected
    async with running(config, clock, Bus(), tamper) as (service, task):
        await _drained(service, task, clock)
        assert service.drainer is not None
        assert service.drainer.dead_lettered == 1
        assert not task.done()
    (letter,) = read_store(data_dir, outbox.dead_letters)
    assert letter.ref_id == incident_id
    assert letter.reason == "bad \\ud800 byte"


#: Retry-After values that name no usable wait: fields too large for a date, and a delay of 400
#: digits (Infinity as a float).
NO_USABLE_WAIT = [
    "Mon, 01 Jan 2026 99999999999999999999:00:00 GMT",
    "Mon, 01 Jan 2026 00:00:00 +99999999999999999999",
    "9" * 400,
]


def _answering_429s(retry_afters: list[str]) -> Tamper:
    """A tamper answering the next POSTs of incidents 429, with each `Retry-After` in turn."""
    tamper = Tamper()
    left = list(retry_afters)

    def rate_limited(request: httpx.Request) -> httpx.Response | None:
        if _endpoint(request) != "incidents" or not left:
            return None
        return httpx.Response(429, headers={"Retry-After": left.pop(0)}, json={"error": "slow"})

    tamper.answer = rate_limited
    return tamper


async def test_a_429_whose_retry_after_names_no_usable_wait_backs_off_as_usual(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    newest = write_backlog(
        config.hub.data_dir, incidents=2, revisions=2, start=clock.t - 60, span_s=10
    )
    tamper = _answering_429s(NO_USABLE_WAIT)
    async with running(config, clock, Bus(), tamper) as (service, task):
        for _ in NO_USABLE_WAIT:
            wait = await alive(task, clock.sleeping("sync-drainer"))
            assert 0 < wait <= RETRY_CAP_S  # the usual backoff
            assert service.link.state is LinkState.RATE_LIMITED
            await clock.advance(wait)
        await _drained(service, task, clock)
        assert service.link.state is LinkState.ONLINE
    assert len(tamper.tampered) == len(NO_USABLE_WAIT)
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_a_429_asking_for_centuries_is_waited_out_for_a_day_at_most(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    config = sync_config(tmp_path, cloud.url, secret)
    newest = write_backlog(
        config.hub.data_dir, incidents=1, revisions=2, start=clock.t - 60, span_s=10
    )
    tamper = _answering_429s(["9" * 300])  # finite as a float: about 1e292 years
    async with running(config, clock, Bus(), tamper) as (service, task):
        wait = await alive(task, clock.sleeping("sync-drainer"))
        assert MAX_RETRY_AFTER_S <= wait <= MAX_RETRY_AFTER_S + 1.0  # a day, and jitter
        await clock.advance(wait)
        await _drained(service, task, clock)
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())
