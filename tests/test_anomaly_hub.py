"""Anomaly detection as the daemon builds it from the configuration: the univariate model scores
every numeric stream, and `[anomaly.water_system]` maps a pump loop's devices to the multivariate
model's columns."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hub import wiring
from hub.bus import Bus
from hub.config import WATER_CALIBRATION_FILE, parse_config
from hub.events import AnomalyScore, Reading
from hub.measurements import Measurement
from tests.sync_support import T0, FakeClock

CONFIG = {
    "anomaly": {
        "max_streams": 10,
        "water_system": {
            "current": "pump",
            "pressure": "loop",
            "flow": "meter",
            "calibrate_rows": 50,
            "calibrate_hours": 0.01,  # 36 s; the default is a day
        },
    }
}


async def test_the_configured_service_scores_streams_and_the_water_loop(
    clock: FakeClock, tmp_path: Path
) -> None:
    bus = Bus()
    scores = bus.subscribe("test", (AnomalyScore,), maxsize=100_000)
    config = parse_config({**CONFIG, "hub": {"data_dir": str(tmp_path)}})
    service = wiring.anomaly_service(config, bus, clock)
    task = asyncio.create_task(service.run())
    try:
        for i in range(80):
            at = T0 + i
            bus.publish(Reading("pump", Measurement.CURRENT, 1.3 + 0.01 * (i % 3), at))
            bus.publish(Reading("loop", Measurement.PRESSURE, 0.3 + 0.01 * (i % 5), at))
            bus.publish(Reading("meter", Measurement.FLOW, 10.0 + 0.1 * (i % 7), at))
            bus.publish(Reading("door", Measurement.CONTACT, False, at))  # not a number: skipped
        async with asyncio.timeout(10):
            await scores.wait(
                240 + 20
            )  # one per numeric reading, one per water row after calibration
        got = scores.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    streams = {s.stream for s in got}
    assert {"pump/current", "loop/pressure", "meter/flow"} <= streams
    assert {s.system for s in got if s.stream == "meter/flow"} == {"water_damage"}
    water = [s for s in got if s.stream == "water_system"]
    assert water, "the water loop was not scored after its calibration rows"
    assert {s.model for s in water} == {"water_system"}
    assert all(0.0 <= s.score <= 1.0 for s in got)
    assert service.problem is None
    assert service.streams == 3
    assert service.water_status() == {
        "calibrated": True,
        "restored": False,
        "rows": 50,
        "rows_needed": 50,
        "seconds": 36.0,
        "seconds_needed": 36.0,
        "note": None,
    }
    assert (tmp_path / WATER_CALIBRATION_FILE).exists()  # kept for the next start
