"""The outbox drainer against the reference server: batching, ordering, faults, dead letters,
credentials and clock skew. Time is a virtual clock shared by hub and server."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from hub.store import open_database, outbox
from sync.link import AUTH_INITIAL_S, LinkState
from sync.server import RunningServer, serve
from tests.sync_support import (
    HUB,
    FakeClock,
    drainer_rig,
    new_secret,
    read_store,
    rollup,
    write_backlog,
)

pytestmark = pytest.mark.timeout(60)


async def test_backlog_sends_only_the_newest_revision_of_each_incident(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(
        tmp_path / "data", incidents=300, revisions=4, start=clock.t - 3600, span_s=3600
    )
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        assert r.drainer.requests == 2  # 300 incidents: batches of 200 and 100
        assert r.link.state is LinkState.ONLINE
    stored = cloud.stored_revisions(HUB)
    assert sorted(stored) == sorted(newest.items())  # only the newest revisions were sent
    assert {i["id"]: i["revision"] for i in cloud.incidents(HUB)} == newest
    assert read_store(tmp_path / "data", outbox.pending_count) == 0


async def test_critical_incidents_go_first(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(
        tmp_path / "data",
        incidents=20,
        revisions=2,
        start=clock.t - 600,
        span_s=600,
        severity=lambda n: "critical" if n % 2 else "high",
    )
    async with drainer_rig(tmp_path, cloud, clock, secret, max_items=5) as r:
        await r.drain()
    order = [i for i, _ in cloud.stored_revisions(HUB)]
    assert sorted(order) == sorted(newest)
    severity = {i["id"]: i["severity"] for i in cloud.incidents(HUB)}
    assert [severity[i] for i in order] == ["critical"] * 10 + ["high"] * 10


@pytest.mark.parametrize("fault", ["500", "reset"])
async def test_server_errors_and_resets_are_retried_with_backoff(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes, fault: str
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=10, revisions=3, start=clock.t, span_s=10)
    cloud.set_fault(fault, count=4)
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        waits = clock.slept_by("sync-drainer")
        assert len(waits) == 4
        assert all(0 < w <= 300 for w in waits)
        assert r.link.last_error is not None
        assert r.link.state is LinkState.ONLINE
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_429_waits_at_least_retry_after(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=3, revisions=2, start=clock.t, span_s=10)
    cloud.set_fault("429", count=2)
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        waits = clock.slept_by("sync-drainer")
        assert len(waits) == 2
        assert all(w >= 1.0 for w in waits)  # the server's Retry-After: 1
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_413_splits_the_batch(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=40, revisions=2, start=clock.t, span_s=10)
    cloud.set_fault("413", count=1)
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        assert r.drainer.splits == 1
        assert r.drainer.requests == 3  # the whole batch, then its two halves
        assert clock.slept_by("sync-drainer") == []  # a split is not a failure
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_a_slow_server_within_the_timeout_is_just_slow(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=5, revisions=2, start=clock.t, span_s=10)
    cloud.set_fault("slow", count=1)
    async with drainer_rig(tmp_path, cloud, clock, secret, timeout_s=10) as r:
        await r.drain()
        assert r.drainer.requests == 1
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())


async def test_a_timeout_is_retried_and_stores_nothing_twice(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=5, revisions=2, start=clock.t, span_s=10)
    cloud.set_fault("slow", count=1)
    async with drainer_rig(tmp_path, cloud, clock, secret, timeout_s=0.5) as r:
        await r.drain()
        assert r.drainer.requests == 2
        assert r.link.last_error is not None
        assert "timeout" in r.link.last_error
    # The slow request may still land after the retry: it is a duplicate then, not a second copy.
    stored = cloud.stored_revisions(HUB)
    assert len(stored) == len(set(stored))
    assert sorted(set(stored)) == sorted(newest.items())


async def test_a_rejected_item_becomes_a_dead_letter_and_blocks_nothing(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    newest = write_backlog(tmp_path / "data", incidents=6, revisions=2, start=clock.t, span_s=10)
    db = open_database(tmp_path / "data")
    bad = json.loads(db.execute("SELECT body FROM outbox ORDER BY seq LIMIT 1").fetchone()[0])
    bad.update(id="6e0c5ad6-0000-4000-8000-000000000001", revision=1, emergency_type="volcano")
    db.execute(
        "INSERT INTO outbox (kind, ref_id, revision, priority, body, created_at) "
        "VALUES ('incident', ?, 1, 0, ?, ?)",
        [bad["id"], json.dumps(bad), clock.t - 100],  # the oldest, most urgent row
    )
    db.conn.close()
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        assert r.drainer.dead_lettered == 1
        requests = r.drainer.requests
        await r.drain()
        assert r.drainer.requests == requests  # not retried unchanged
    assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())
    db = open_database(tmp_path / "data")
    (letter,) = outbox.dead_letters(db)
    assert letter.ref_id == bad["id"]
    assert "emergency_type" in letter.reason
    assert outbox.pending_count(db) == 0


async def test_wrong_secret_is_unauthorized_and_waits_long_without_logging_secrets(
    tmp_path: Path,
    cloud: RunningServer,
    clock: FakeClock,
    secret: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    write_backlog(tmp_path / "data", incidents=2, revisions=2, start=clock.t, span_s=10)
    wrong = new_secret()
    async with drainer_rig(tmp_path, cloud, clock, wrong) as r:
        delay = await asyncio.wait_for(clock.sleeping("sync-drainer"), 10)
        assert r.link.state is LinkState.UNAUTHORIZED
        assert delay >= AUTH_INITIAL_S / 2
        assert r.link.clock_skew_s is None
    assert cloud.stored_revisions(HUB) == []
    assert (
        read_store(tmp_path / "data", outbox.pending_count) == 4
    )  # two incidents, two revisions each
    for s in (wrong, secret):
        assert s.decode() not in caplog.text
    assert "sig=" not in caplog.text
    assert "HomeGuard-HMAC" not in caplog.text
    assert any(r.levelno == logging.ERROR and "credentials" in r.message for r in caplog.records)


async def test_unknown_hub_id_is_refused_as_forbidden(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    write_backlog(
        tmp_path / "data", incidents=1, revisions=2, start=clock.t, span_s=10, hub_id="hub-9"
    )
    async with drainer_rig(tmp_path, cloud, clock, secret, hub_id="hub-9") as r:
        await asyncio.wait_for(clock.sleeping("sync-drainer"), 10)
        assert r.link.state is LinkState.FORBIDDEN
    assert read_store(tmp_path / "data", outbox.pending_count) == 2


async def test_skewed_clock_is_reported_and_corrected(
    tmp_path: Path, secret: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    hub_clock = FakeClock()
    server_time = hub_clock.t - 3600  # the hub's clock runs an hour fast
    newest = write_backlog(
        tmp_path / "data", incidents=3, revisions=2, start=hub_clock.t, span_s=10
    )
    with serve(tmp_path / "cloud.db", {HUB: secret}, clock=lambda: server_time) as srv:
        async with drainer_rig(tmp_path, srv, hub_clock, secret) as r:
            await r.drain()
            assert r.link.clock_skew_s == pytest.approx(-3600, abs=5)
            assert r.link.state is LinkState.ONLINE
        assert sorted(srv.stored_revisions(HUB)) == sorted(newest.items())
    assert "clock is +3600 s off" in caplog.text


async def test_a_bad_rollup_is_split_out_of_its_batch_into_a_dead_letter(
    tmp_path: Path, cloud: RunningServer, clock: FakeClock, secret: bytes
) -> None:
    rollups = [rollup("basement", f"2026-11-25T{n:02d}:00:00.000Z") for n in range(8)]
    rollups[5]["count"] = -1  # the server refuses the whole batch for this one
    db = open_database(tmp_path / "data")
    outbox.enqueue_telemetry(db, rollups, until=0.0, at=clock.t, budget=1000)
    db.conn.close()
    async with drainer_rig(tmp_path, cloud, clock, secret) as r:
        await r.drain()
        assert r.drainer.dead_lettered == 1
    assert len(cloud.telemetry(HUB)) == 7
    db = open_database(tmp_path / "data")
    (letter,) = outbox.dead_letters(db)
    assert letter.kind == "telemetry"
    assert "count" in letter.reason
    assert outbox.pending_count(db) == 0
