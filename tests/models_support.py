"""What the anomaly service's tests share: a settable clock, a running service, and a pump loop
(its column mapping and its six devices' readings)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from hub.bus import Bus, Subscription
from hub.events import AnomalyScore, Reading
from hub.measurements import Measurement
from models.detect import detector
from models.service import AnomalyService
from models.water import WaterDetector
from models.water_service import WaterRows, WaterSystemConfig
from tests.task_support import background

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t - T0


@contextlib.asynccontextmanager
async def running(service: AnomalyService) -> AsyncIterator[asyncio.Task[None]]:
    """The service running for the block, entered once its models are loaded (or refused)."""
    async with background(service.run()) as task:
        async with asyncio.timeout(10):
            await service.started.wait()
        yield task


async def take(sub: Subscription[AnomalyScore], n: int) -> list[AnomalyScore]:
    async with asyncio.timeout(10):
        await sub.wait(n)
    return sub.drain()


def pump_config(
    calibrate_rows: int = 100, calibration_file: Path | None = None, calibrate_s: float = 0.0
) -> WaterSystemConfig:
    return WaterSystemConfig(
        columns=(
            None,  # no accelerometers on this loop
            None,
            ("pump", Measurement.CURRENT),
            ("loop", Measurement.PRESSURE),
            ("pump", Measurement.TEMPERATURE),
            ("loop", Measurement.TEMPERATURE),
            ("pump", Measurement.VOLTAGE),
            ("meter", Measurement.FLOW),
        ),
        calibrate_rows=calibrate_rows,
        calibrate_s=calibrate_s,
        calibration_file=calibration_file,
    )


def pump_readings(
    rng: np.random.Generator, second: int, flow: float, current: float = 1.3
) -> list[Reading]:
    """One second of the loop: its six devices, a tenth of a second apart."""
    at = T0 + second
    return [
        Reading("pump", Measurement.CURRENT, current + rng.normal(0, 0.05), at),
        Reading("loop", Measurement.PRESSURE, 0.3 + rng.normal(0, 0.05), at + 0.1),
        Reading("pump", Measurement.TEMPERATURE, 79 + rng.normal(0, 0.1), at + 0.2),
        Reading("loop", Measurement.TEMPERATURE, 26 + rng.normal(0, 0.02), at + 0.3),
        Reading("pump", Measurement.VOLTAGE, 233 + rng.normal(0, 2), at + 0.4),
        Reading("meter", Measurement.FLOW, flow + rng.normal(0, 0.5), at + 0.5),
    ]


def water_rows(config: WaterSystemConfig) -> WaterRows:
    """The daemon's water system for `config`, with the shipped model."""
    model = detector("water_system")
    assert isinstance(model, WaterDetector)
    return WaterRows(config, model)


def pump_seconds(seconds: range, seed: int, flow: float = 32.0) -> list[Reading]:
    """`pump_readings` for each of `seconds`, drawn from one generator seeded `seed`."""
    rng = np.random.default_rng(seed)
    return [r for second in seconds for r in pump_readings(rng, second, flow)]


def water_scores(bus: Bus) -> Subscription[AnomalyScore]:
    """The water system's scores, as the service publishes them on `bus`."""
    return bus.subscribe("test", (AnomalyScore,), where=lambda s: s.stream == "water_system")
