"""Recovering from what a gateway, a rate limit or a clock does to the link: 400s that are not about
the rows, 429s with and without a usable Retry-After, and a clock fixed after the hub learnt to
sign with the server's time. The cloud is the reference server, behind a gateway that answers
some requests itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from hub.store import DbWorker, open_database, outbox
from sync.client import DispatchClient
from sync.drainer import LONE_REFUSALS
from sync.heartbeat import Heartbeat
from sync.link import RETRY_CAP_S, Link, LinkState
from sync.server import RunningServer, serve
from tests.sync_support import HUB, FakeClock, Rig, drainer_rig, read_store, write_backlog

pytestmark = pytest.mark.timeout(60)

#: The gateway's own answer to a request (status, headers), or None to let it through.
Rule = Callable[[httpx.Request], tuple[int, dict[str, str]] | None]


class Gateway(httpx.AsyncBaseTransport):
    """The real transport to the reference server, behind a gateway that answers a request itself
    when `rule` says so (a WAF's 400, a proxy's 429)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.rule: Rule = lambda _request: None
        self.answered: list[int] = []

    def answer_next(self, count: int, status: int, headers: dict[str, str] | None = None) -> None:
        left = [count]

        def rule(_request: httpx.Request) -> tuple[int, dict[str, str]] | None:
            if left[0] <= 0:
                return None
            left[0] -= 1
            return status, headers or {}

        self.rule = rule

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        own = self.rule(request)
        if own is None:
            return await self.inner.handle_async_request(request)
        status, headers = own
        self.answered.append(status)
        return httpx.Response(status, headers=headers, json={"error": "the gateway says no"})

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> AsyncIterator[tuple[Rig, Gateway]]:
    """A drainer sending to `cloud` through a `Gateway`."""
    gateway = Gateway()
    async with drainer_rig(tmp_path, cloud, clock, secret, transport=gateway) as r:
        yield r, gateway


# -- 400 ----------------------------------------------------------------------------------------


async def test_a_gateway_answering_400_for_a_while_loses_nothing(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=10, revisions=2, start=clock.t, span_s=10)
    async with rig(tmp_path, cloud, clock, secret) as (r, gateway):
        gateway.answer_next(40, 400)
        await r.drain()
        assert gateway.answered == [400] * 40
        waits = r.waits()
        assert len(waits) == 40  # one request per backoff round: no burst of splits
        assert all(0 < w <= RETRY_CAP_S for w in waits)
        assert sum(waits) > 10 * 60  # the backoff grew (40 rounds of 1-2 s would be < 80 s)
        assert r.drainer.dead_lettered == 0
        assert r.link.state is LinkState.ONLINE
    assert read_store(tmp_path / "data", outbox.dead_letters) == []
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_a_row_refused_alone_again_and_again_is_set_aside_and_blocks_nothing(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=8, revisions=2, start=clock.t, span_s=10)
    db = open_database(tmp_path / "data")
    poison = db.execute("SELECT ref_id FROM outbox ORDER BY seq LIMIT 1").fetchone()[0]
    db.conn.close()
    alone: list[int] = []

    def waf(request: httpx.Request) -> tuple[int, dict[str, str]] | None:
        """A gateway rule tripping on one incident's body, whatever else comes with it."""
        ids = [i["id"] for i in json.loads(request.content)["incidents"]]
        if poison not in ids:
            return None
        alone.append(len(ids) == 1)
        return 400, {}

    async with rig(tmp_path, cloud, clock, secret) as (r, gateway):
        gateway.rule = waf
        await r.drain()
        refusals = len(gateway.answered)
        assert len(r.waits()) == refusals - 1  # each 400 is a backoff round, bar the last
        assert sum(alone) == LONE_REFUSALS
        assert r.drainer.dead_lettered == 1
    (letter,) = read_store(tmp_path / "data", outbox.dead_letters)
    assert letter.ref_id == poison
    assert "400" in letter.reason
    delivered = dict(cloud.stored_revisions(HUB))
    assert delivered == {i: rev for i, rev in newest.items() if i != poison}


# -- 429 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, "0"])
async def test_a_429_without_a_usable_retry_after_backs_off_as_usual(
    tmp_path: Path,
    cloud: RunningServer,
    clock: FakeClock,
    secret: bytes,
    retry_after: str | None,
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=3, revisions=2, start=clock.t, span_s=10)
    async with rig(tmp_path, cloud, clock, secret) as (r, gateway):
        gateway.answer_next(16, 429, {} if retry_after is None else {"Retry-After": retry_after})
        await r.drain()
        waits = r.waits()
        assert len(waits) == 16
        assert all(0 < w <= RETRY_CAP_S for w in waits)
        assert sum(waits) > 5 * 60  # grew like the 5xx backoff, not a fixed second or two
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_a_429_with_an_http_date_waits_until_then(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=2, revisions=2, start=clock.t, span_s=10)
    async with rig(tmp_path, cloud, clock, secret) as (r, gateway):
        gateway.answer_next(1, 429, {"Retry-After": formatdate(clock.t + 600, usegmt=True)})
        await r.drain()
        (wait,) = r.waits()
        assert 600 <= wait <= 601
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_the_heartbeat_waits_at_least_retry_after(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    gateway = Gateway()
    gateway.answer_next(1, 429, {"Retry-After": "900"})
    async with (
        DbWorker(tmp_path / "data") as db,
        DispatchClient(
            base_url=cloud.url, hub_id=HUB, secret=secret, clock=clock, transport=gateway
        ) as client,
    ):
        link = Link(clock)
        link.ok()
        heartbeat = Heartbeat(
            db=db, client=client, link=link, clock=clock, sleep=clock.sleep, interval_s=60
        )
        task = asyncio.create_task(heartbeat.run(), name="sync-heartbeat")
        try:
            delay = await asyncio.wait_for(clock.sleeping("sync-heartbeat"), 10)
            assert delay >= 900
            assert link.state is LinkState.RATE_LIMITED
            link.ok()  # as the drainer's next delivery would
            await clock.next_wakeup("sync-heartbeat")
            assert await asyncio.wait_for(clock.sleeping("sync-heartbeat"), 10) == 60
            assert heartbeat.sent == 1
            assert cloud.last_heartbeat(HUB) is not None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- clock --------------------------------------------------------------------------------------


async def test_a_clock_fixed_after_the_offset_was_learnt_keeps_delivering(
    tmp_path: Path, secret: bytes, clock: FakeClock
) -> None:
    fast = [3600.0]  # how far the hub's clock runs ahead of the server's
    data_dir = tmp_path / "data"
    first = write_backlog(data_dir, incidents=3, revisions=2, start=clock.t, span_s=10)
    with serve(tmp_path / "cloud.db", {HUB: secret}, clock=lambda: clock.t - fast[0]) as srv:
        async with drainer_rig(tmp_path, srv, clock, secret) as r:
            await r.drain()
            assert r.link.clock_skew_s == pytest.approx(-3600, abs=5)
            assert r.client.clock_offset_s == pytest.approx(-3600, abs=5)
            # NTP steps the hub's clock back to the right time; the server's time goes on.
            clock.t -= 3600
            fast[0] = 0.0
            second = write_backlog(data_dir, incidents=3, revisions=2, start=clock.t, span_s=10)
            await r.drain(timeout_s=10)
            assert r.link.state is LinkState.ONLINE
            assert r.link.clock_skew_s is None
            assert r.client.clock_offset_s == 0.0
            assert r.waits() == []  # the refused signature was re-made at once, not waited on
        assert sorted(srv.stored_revisions(HUB)) == sorted({**first, **second}.items())
