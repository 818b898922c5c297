"""Defence in depth: a batch the store cannot take for a reason that is not the store's own (a
device name SQLite cannot encode, from some path no decoder cleaned) must not end the recorder's
task, and with it the hub. It is logged with its traceback; the rest of that batch and every
later one are written. A real store on disk; the test waits on the recorder's log, not a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bus import Bus
from hub.clock import SystemClock
from hub.events import DeviceDiscovered, Reading
from hub.measurements import Measurement
from hub.recorder import Recorder
from hub.store import DbWorker, open_database
from tests.test_zeroconf import LogEvents

T0 = 1_700_000_000.0


@pytest.fixture
def logs() -> Iterator[LogEvents]:
    with LogEvents.of("hub.recorder") as handler:
        yield handler


def discovered(device_id: str, name: str) -> DeviceDiscovered:
    return DeviceDiscovered(device_id, "zigbee2mqtt", name, "SJCGQ11LM", ("water_leak",), T0)


def leak(device_id: str, wet: bool, at: float) -> Reading:
    return Reading(device_id, Measurement.WATER_LEAK, wet, at)


async def test_a_batch_that_fails_outside_the_store_is_logged_and_the_recorder_goes_on(
    tmp_path: Path, logs: LogEvents
) -> None:
    bus = Bus()
    async with DbWorker(tmp_path) as db:
        recorder = Recorder(
            bus=bus, db=db, clock=SystemClock(), flush_interval_s=0.01, retention_s=10 * 365 * 86400
        )
        task = asyncio.create_task(recorder.run())
        try:
            # One batch: a good device, a reading, and a name SQLite cannot encode.
            bus.publish(discovered("z2m-kitchen", "Kitchen leak"))
            bus.publish(leak("z2m-kitchen", False, T0 + 1))
            bus.publish(discovered("z2m-bathroom", "Bathroom leak \ud83d"))
            waiter = asyncio.create_task(logs.wait_for("z2m-bathroom"))
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # the recorder's own error, if it ended on one
                pytest.fail("the recorder stopped")
            await waiter
            assert recorder.last_error is not None
            assert "UnicodeEncodeError" in recorder.last_error
            # The store's one thread runs jobs in order: this one ends after the batch's.
            await db.run(lambda _db: None)
            # A later batch is written as ever (at the latest when the recorder stops).
            bus.publish(discovered("z2m-hall", "Hall leak"))
            bus.publish(leak("z2m-kitchen", True, T0 + 2))
            assert not task.done()
        finally:
            task.cancel()  # the recorder writes what it holds on the way out
            with contextlib.suppress(asyncio.CancelledError):
                await task

    [record] = [r for r in logs.records if "z2m-bathroom" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None  # with its traceback
    db2 = open_database(tmp_path)
    names = dict(db2.execute("SELECT id, name FROM devices").fetchall())
    assert names == {"z2m-kitchen": "Kitchen leak", "z2m-hall": "Hall leak"}
    rows = db2.execute(
        "SELECT at, text FROM readings WHERE device_id = 'z2m-kitchen' ORDER BY at"
    ).fetchall()
    assert rows == [(T0 + 1, "false"), (T0 + 2, "true")]
