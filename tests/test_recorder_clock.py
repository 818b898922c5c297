"""The recorder after the wall clock steps back (NTP at boot on a Pi without a real-time clock):
pruning goes on, and the newest reading is the last value shown; a forgotten device leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.bus import Bus
from hub.events import DeviceDiscovered, DeviceForgotten, Reading
from hub.measurements import Measurement
from hub.recorder import Recorder
from hub.store import DbWorker
from hub.store import readings as repo
from tests.helpers import StepClock
from tests.sync_support import T0

HOUR = 3600.0
DAY = 24 * HOUR
YEAR = 365 * DAY


def _leak(wet: bool, at: float) -> Reading:
    return Reading("kitchen-leak", Measurement.WATER_LEAK, wet, at)


async def test_after_a_step_back_pruning_goes_on_and_the_newest_value_shows(
    tmp_path: Path,
) -> None:
    clock = StepClock(T0 + YEAR)  # booted a year ahead
    row = repo.DeviceRow("kitchen-leak", "native", "Kitchen", None, None, None, "config")
    async with DbWorker(tmp_path) as db:
        await db.run(repo.register_devices, [row])
        bus = Bus()
        recorder = Recorder(bus=bus, db=db, clock=clock, flush_interval_s=1.0, retention_s=7 * DAY)
        bus.publish(_leak(False, clock.now()))
        await recorder.flush()
        clock.wall = T0  # NTP steps back a year
        for _ in range(10 * 24):
            bus.publish(Reading("kitchen-leak", Measurement.TEMPERATURE, 20.0, clock.now()))
            await recorder.flush()
            clock.tick(HOUR)
        bus.publish(_leak(True, clock.now()))
        await recorder.flush()
        old = await db.run(
            lambda d: d.execute(
                "SELECT count(*) FROM readings WHERE at < ?", [clock.now() - 7 * DAY - HOUR]
            ).fetchone()[0]
        )
        [device] = await db.run(repo.device_table)
    assert old == 0
    assert device["readings"]["water_leak"]["value"] == "true"
    assert device["last_seen"] == clock.now()


async def test_a_forgotten_device_leaves_the_device_table(tmp_path: Path) -> None:
    clock = StepClock(T0)
    found = DeviceDiscovered("z2m-basement-leak", "zigbee2mqtt", "Basement Leak", None, (), T0)
    async with DbWorker(tmp_path) as db:
        bus = Bus()
        recorder = Recorder(bus=bus, db=db, clock=clock, flush_interval_s=1.0, retention_s=DAY)
        bus.publish(found)
        await recorder.flush()
        assert [d["id"] for d in await db.run(repo.device_table)] == ["z2m-basement-leak"]
        bus.publish(DeviceForgotten("z2m-basement-leak", "zigbee2mqtt", T0 + 1))
        await recorder.flush()
        assert await db.run(repo.device_table) == []
        assert await db.run(repo.liveness_memory) == []  # not remembered at the next start
        bus.publish(found)  # paired again under the same name: back
        await recorder.flush()
        assert [d["id"] for d in await db.run(repo.device_table)] == ["z2m-basement-leak"]


def _old_readings(db: Any, count: int, at: float) -> None:
    db.conn.executemany(
        "INSERT INTO readings (device_id, measurement, at, value) VALUES (?, ?, ?, ?)",
        [("kitchen-leak", "temperature", at + i, 20.0) for i in range(count)],
    )


async def test_a_prune_of_many_readings_goes_in_short_batches_until_none_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch is its own job on the store's thread, so an incident's write or the health
    row waits at most one batch; the recorder goes on until every old reading is gone."""
    monkeypatch.setattr(repo, "PRUNE_BATCH", 1000)
    clock = StepClock(T0)
    async with DbWorker(tmp_path) as db:
        await db.run(_old_readings, 2500, T0 - 30 * DAY)
        assert await db.run(repo.prune, T0 - DAY, 1000) == 1000  # one batch, and more are left
        bus = Bus()
        recorder = Recorder(bus=bus, db=db, clock=clock, flush_interval_s=1.0, retention_s=DAY)
        bus.publish(Reading("kitchen-leak", Measurement.TEMPERATURE, 21.0, clock.now()))
        await recorder.flush()  # the first flush prunes: 1500 left, in two batches
        left = await db.run(
            lambda d: d.execute("SELECT count(*), max(at) FROM readings").fetchone()
        )
    assert tuple(left) == (1, T0)  # the new reading only
