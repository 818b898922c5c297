"""Harness for the cloud sync tests: a virtual clock whose sleeps wait for the test to move time,
a switchable network outage in front of the real transport, incident backlogs, and a drainer
running against a server (`drainer_rig`)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from hub.config import Config, parse_config
from hub.events import IncidentKey, IncidentReport
from hub.incident import Incident, Status
from hub.store import DbWorker, open_database
from hub.store import incidents as repo
from sync.client import DispatchClient
from sync.drainer import Drainer
from sync.link import Link
from sync.server import RunningServer
from tests.task_support import background

T = TypeVar("T")

HUB = "hub-1"
#: 2026-11-26T00:00:00Z: the virtual clock starts here.
T0 = 1795651200.0


class FakeClock:
    """`now()` and `monotonic()` move only when the test says; `sleep(d)` waits until they have
    moved `d` seconds. `run_until_idle`-style helpers jump straight to the next wake-up."""

    def __init__(self, start: float = T0) -> None:
        self.t = start
        self._start = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None], str]] = []
        self._ids = itertools.count()
        self.slept: list[tuple[str, float]] = []
        self._new_sleeper = asyncio.Event()

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t - self._start

    async def sleep(self, delay: float) -> None:
        task = asyncio.current_task()
        name = task.get_name() if task else "?"
        self.slept.append((name, delay))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(delay, 0.0), next(self._ids), future, name))
        self._new_sleeper.set()
        await future

    async def advance(self, seconds: float) -> None:
        """Move time and wake every sleeper whose time has come."""
        self.t += seconds
        while self._sleepers and self._sleepers[0][0] <= self.t:
            future = heapq.heappop(self._sleepers)[2]
            if not future.done():
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)

    async def next_wakeup(self, task_name: str | None = None) -> None:
        """Wait for someone (the task of that name, if given) to sleep, then jump to its wake-up
        (waking every sleeper due by then)."""
        while True:
            due = [
                s[0]
                for s in self._sleepers
                if not s[2].done() and (task_name is None or s[3] == task_name)
            ]
            if due:
                break
            self._new_sleeper.clear()
            await self._new_sleeper.wait()
        await self.advance(max(0.0, min(due) - self.t))

    async def sleeping(self, task_name: str) -> float:
        """Wait until the task of that name sleeps; returns how long it means to."""
        while True:
            for deadline, _, future, name in self._sleepers:
                if name == task_name and not future.done():
                    return deadline - self.t
            self._new_sleeper.clear()
            await self._new_sleeper.wait()

    def slept_by(self, task_name: str) -> list[float]:
        return [d for name, d in self.slept if name == task_name]


@contextlib.asynccontextmanager
async def time_flows(clock: FakeClock, task_name: str = "sync-drainer") -> AsyncIterator[None]:
    """While the block runs, each sleep of that task ends at once (time jumps to its end; other
    sleepers due by then wake too). Only one task drives time, so periodic loops cannot spin."""

    async def pump() -> None:
        while True:
            await clock.next_wakeup(task_name)

    async with background(pump(), name="time-pump"):
        yield


class Outage(httpx.AsyncBaseTransport):
    """The real HTTP transport, behind a switch: while `down`, every request fails to connect."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.down = False
        self.refused = 0
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("network is unreachable (simulated outage)", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def new_secret() -> bytes:
    return secrets.token_hex(32).encode()


def write_secret(path: Path, secret: bytes) -> Path:
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return path


def sync_config(tmp_path: Path, url: str, secret: bytes, hub_id: str = HUB, **cloud: Any) -> Config:
    return parse_config(
        {
            "hub": {"id": hub_id, "data_dir": str(tmp_path / "data")},
            "cloud": {
                "url": url,
                "secret_file": str(write_secret(tmp_path / "cloud.secret", secret)),
                **cloud,
            },
        }
    )


def report(at: float, title: str, severity: str = "critical") -> IncidentReport:
    return IncidentReport(
        key=IncidentKey.WATER_LEAK,
        emergency_type="water_damage",
        severity=severity,
        title=title,
        location="kitchen",
        source_id="water_leak",
        source_version="1",
        at=at,
        sensors=("kitchen-leak",),
    )


def write_backlog(
    data_dir: Path,
    *,
    incidents: int,
    revisions: int,
    start: float,
    span_s: float,
    hub_id: str = HUB,
    severity: Callable[[int], str] = lambda _n: "critical",
) -> dict[str, int]:
    """`incidents` incidents of `revisions` revisions each (the last one resolves it), spread over
    `span_s` seconds. Returns the newest revision of each incident id. Written with
    synchronous=OFF: this is set-up, not the code under test."""
    db = open_database(data_dir)
    db.execute("PRAGMA synchronous=OFF")
    newest: dict[str, int] = {}
    step = span_s / max(1, incidents * revisions)
    at = start
    try:
        for n in range(incidents):
            last: Incident | None = None
            for r in range(revisions - 1):
                changed = repo.apply_report(
                    db, report(at, f"Leak {n} update {r}", severity(n)), hub_id
                )
                assert changed is not None
                last = changed
                at += step
            assert last is not None
            resolved = repo.change_status(db, last.id, Status.RESOLVED, at)
            at += step
            newest[resolved.id] = resolved.revision
    finally:
        db.conn.close()
    return newest


@dataclass
class Rig:
    """A drainer running against a server, with what tests look at."""

    drainer: Drainer
    link: Link
    db: DbWorker
    client: DispatchClient
    clock: FakeClock
    data_dir: Path

    async def drain(self, timeout_s: float = 30) -> None:
        async with time_flows(self.clock), asyncio.timeout(timeout_s):
            await self.drainer.drained()

    def waits(self) -> list[float]:
        """What the drainer slept, in order (its backoff)."""
        return self.clock.slept_by("sync-drainer")


@contextlib.asynccontextmanager
async def drainer_rig(
    tmp_path: Path,
    cloud: RunningServer,
    clock: FakeClock,
    secret: bytes,
    *,
    hub_id: str = HUB,
    timeout_s: float = 5.0,
    max_items: int = 200,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Rig]:
    """A drainer on a store in `tmp_path / "data"`, sending to `cloud` (through `transport`)."""
    data_dir = tmp_path / "data"
    async with (
        DbWorker(data_dir) as db,
        DispatchClient(
            base_url=cloud.url,
            hub_id=hub_id,
            secret=secret,
            clock=clock,
            timeout_s=timeout_s,
            transport=transport,
        ) as client,
    ):
        link = Link(clock)
        drainer = Drainer(
            db=db,
            client=client,
            link=link,
            clock=clock,
            sleep=clock.sleep,
            wake=asyncio.Event(),
            max_items=max_items,
        )
        async with background(drainer.run(), name="sync-drainer"):
            yield Rig(drainer, link, db, client, clock, data_dir)


def read_store(data_dir: Path, query: Callable[[Any], T]) -> T:
    """`query(database)` on the hub's store in `data_dir`, opened for it and closed after."""
    db = open_database(data_dir)
    try:
        return query(db)
    finally:
        db.conn.close()


def rollup(sensor_id: str, period_start: str) -> dict[str, object]:
    """An hourly temperature rollup as the telemetry endpoint takes it."""
    return {
        "sensor_id": sensor_id,
        "measurement": "temperature",
        "unit": "°C",
        "period_start": period_start,
        "period_s": 3600,
        "count": 3,
        "min": 18.0,
        "max": 21.0,
        "mean": 19.5,
        "last": 19.5,
    }
