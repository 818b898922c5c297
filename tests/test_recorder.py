"""The recorder keeps what it holds when the hub stops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from hub.bus import Bus
from hub.clock import SystemClock
from hub.events import Reading
from hub.measurements import Measurement
from hub.recorder import Recorder
from hub.store import DbWorker, open_database


async def test_readings_held_at_stop_are_written(tmp_path: Path) -> None:
    bus = Bus()
    async with DbWorker(tmp_path) as db:
        recorder = Recorder(
            bus=bus, db=db, clock=SystemClock(), flush_interval_s=3600, retention_s=86400
        )
        task = asyncio.create_task(recorder.run())
        await asyncio.sleep(0)  # let it start waiting (one loop turn, not a timed wait)
        now = time.time()
        for i in range(10):
            bus.publish(Reading("basement", Measurement.TEMPERATURE, 20.0 + i, now + i))
        await asyncio.sleep(0)
        task.cancel()  # long before its hour-long window ends
        with contextlib.suppress(asyncio.CancelledError):
            await task
    db2 = open_database(tmp_path)
    assert db2.execute("SELECT count(*) FROM readings").fetchone()[0] == 10
    assert db2.execute("SELECT value FROM device_state").fetchone()[0] == 29.0
