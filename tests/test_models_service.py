"""The anomaly service on the real bus: numeric readings in, `AnomalyScore` events out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from hub.bus import Bus, Subscription
from hub.events import AnomalyScore, IncidentReport, Reading
from hub.measurements import Measurement
from models import runtime
from models.detect import score_table
from models.service import AnomalyService
from models.train import synthetic
from tests.models_support import T0, Clock, pump_config, pump_readings, running, take, water_scores


async def test_scores_numeric_readings_like_the_table_scorer() -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock())
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    s = synthetic.make_stream("power", 400, np.random.default_rng(8))
    async with running(service):
        for i, (t, x) in enumerate(zip(s.t.tolist(), s.x.tolist(), strict=True)):
            bus.publish(Reading("plug-1", Measurement.POWER, x, t))
            bus.publish(Reading("plug-1", Measurement.SWITCH, True, t))  # not numeric: ignored
            bus.publish(Reading("door", Measurement.CONTACT, False, t))  # not scored
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the service take a batch now and then
        scores = await take(out, 400)
    assert len(scores) == 400
    expected = score_table("univariate", s.t, s.x.reshape(-1, 1))
    np.testing.assert_allclose([e.score for e in scores], expected.sustained)
    first = scores[0]
    assert first.stream == "plug-1/power"
    assert first.system == "electrical"
    assert first.model == "univariate"
    assert first.model_version == runtime.load("univariate").version
    assert first.threshold == expected.threshold
    assert [e.at for e in scores] == s.t.tolist()
    assert service.scored == 400


async def test_level_scores_can_be_published_instead() -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), publish="level")
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    s = synthetic.make_stream("power", 600, np.random.default_rng(8))
    async with running(service):
        for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True):
            bus.publish(Reading("plug-1", Measurement.POWER, x, t))
        scores = await take(out, 600)
    expected = score_table("univariate", s.t, s.x.reshape(-1, 1))
    np.testing.assert_allclose([e.score for e in scores], expected.levels)


async def test_event_scores_can_be_published_instead() -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), publish="event")
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    s = synthetic.make_stream("power", 2000, np.random.default_rng(8))
    async with running(service):
        for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True):
            bus.publish(Reading("plug-1", Measurement.POWER, x, t))
        scores = await take(out, 2000)
    expected = score_table("univariate", s.t, s.x.reshape(-1, 1))
    assert expected.levels.tolist() != expected.scores.tolist()  # something was suppressed
    np.testing.assert_allclose([e.score for e in scores], expected.scores)


@pytest.mark.parametrize(
    ("measurement", "system"),
    [
        (Measurement.CURRENT, "electrical"),
        (Measurement.VOLTAGE, "electrical"),
        (Measurement.FLOW, "water_damage"),
        (Measurement.PRESSURE, "water_damage"),
        (Measurement.TEMPERATURE, "hvac_failure"),
        (Measurement.HUMIDITY, "hvac_failure"),
    ],
)
async def test_each_measurement_has_its_system(measurement: Measurement, system: str) -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock())
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        bus.publish(Reading("dev", measurement, 1.0, T0))
        (score,) = await take(out, 1)
    assert score.system == system
    assert score.stream == f"dev/{measurement.value}"


async def test_streams_are_capped_and_nan_and_late_readings_are_not_scored() -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), max_streams=3)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        for i in range(10):
            bus.publish(Reading(f"t{i}", Measurement.TEMPERATURE, 20.0, T0 + i))
        bus.publish(Reading("t9", Measurement.TEMPERATURE, float("nan"), T0 + 20))
        bus.publish(Reading("t9", Measurement.TEMPERATURE, 21.0, T0 + 5))  # older than its last
        bus.publish(Reading("t9", Measurement.TEMPERATURE, 21.0, T0 + 30))
        scores = await take(out, 11)
    assert [s.stream for s in scores][-1] == "t9/temperature"
    assert service.streams == 3
    assert service.forgotten == 7
    assert service.refused == 2


async def test_idle_streams_are_forgotten() -> None:
    bus = Bus()
    clock = Clock()
    service = AnomalyService(bus=bus, clock=clock, idle_s=60.0)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        bus.publish(Reading("old", Measurement.HUMIDITY, 50.0, T0))
        await take(out, 1)
        clock.t += 7200.0
        bus.publish(Reading("new", Measurement.HUMIDITY, 50.0, clock.t))
        await take(out, 1)
    assert service.streams == 1
    assert service.forgotten == 1


async def test_a_model_failing_its_checksum_is_refused_and_the_hub_runs_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for suffix in (".onnx", ".card.json"):
        shutil.copy(runtime.MODELS_DIR / f"univariate{suffix}", tmp_path / f"univariate{suffix}")
    data = bytearray((tmp_path / "univariate.onnx").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "univariate.onnx").write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, logger="models.service")
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), models_dir=tmp_path, queue_size=10)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    seen: Subscription[Reading] = bus.subscribe("rules", (Reading,))
    async with running(service):
        async with asyncio.timeout(10):
            await service.started.wait()
        for i in range(50):
            bus.publish(Reading("pipe", Measurement.FLOW, 1.0, T0 + i))
        await asyncio.sleep(0)  # one loop turn: the service takes what is waiting
    assert service.discarded == 10  # its queue (queue_size=10) kept the newest; none scored
    assert service.rules_only.is_set()
    assert service.problem is not None
    assert "sha256" in service.problem
    assert len(out) == 0
    assert len(seen) == 50  # the rest of the hub still gets every reading
    warnings = [r.getMessage() for r in caplog.records if r.name == "models.service"]
    assert len(warnings) == 1
    assert "rules only" in warnings[0]


async def test_a_stuck_sensor_becomes_an_incident_through_the_anomaly_rule() -> None:
    from rules.anomaly import AnomalyRule

    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock())
    rule = AnomalyRule(bus=bus)
    reports: Subscription[IncidentReport] = bus.subscribe("test", (IncidentReport,))
    s = synthetic.make_stream("temperature", 1500, np.random.default_rng(21))
    x = s.x.copy()
    x[1000:] = x[1000]  # the sensor stops measuring
    got: list[IncidentReport] = []
    rule_task = asyncio.create_task(rule.run())
    try:
        async with running(service):
            for t, v in zip(s.t.tolist(), x.tolist(), strict=True):
                bus.publish(Reading("hall", Measurement.TEMPERATURE, v, t))
            async with asyncio.timeout(10):
                while not any(r.title and r.at >= s.t[1000] for r in got):
                    await reports.wait()
                    got += reports.drain()
    finally:
        rule_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rule_task
    opened = [r for r in got if r.title and r.at >= s.t[1000]]
    assert len(opened) == 1
    assert opened[0].key == "anomaly:hall/temperature"
    assert opened[0].emergency_type == "hvac_failure"
    assert opened[0].at - s.t[1000] < 1800  # within half an hour of the sensor sticking


async def _incidents(x: np.ndarray, t: np.ndarray) -> list[IncidentReport]:
    """The incidents the service and the anomaly rule (daemon defaults) open for one stream."""
    from rules.anomaly import AnomalyRule

    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock())
    rule = AnomalyRule(bus=bus)
    scores: Subscription[AnomalyScore] = bus.subscribe("scores", (AnomalyScore,))
    reports: Subscription[IncidentReport] = bus.subscribe("test", (IncidentReport,))
    rule_task = asyncio.create_task(rule.run())
    try:
        async with running(service):
            for i, (at, v) in enumerate(zip(t.tolist(), x.tolist(), strict=True)):
                bus.publish(Reading("hall", Measurement.TEMPERATURE, v, at))
                if i % 500 == 0:
                    await asyncio.sleep(0)
            async with asyncio.timeout(10):
                await scores.wait(x.size)
            for _ in range(5):  # let the rule take the last scores
                await asyncio.sleep(0)
    finally:
        rule_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rule_task
    return [r for r in reports.drain() if r.title]


def _four_days() -> synthetic.Stream:
    # seed 4: a reading a minute; the first day (and a settling stretch) is the warm-up.
    return synthetic.make_stream("temperature", 4 * 1440, np.random.default_rng(4))


async def test_a_normal_stream_of_several_days_opens_no_incident() -> None:
    s = _four_days()
    assert await _incidents(s.x, s.t) == []


async def test_a_single_spike_opens_no_incident() -> None:
    s = _four_days()
    x = s.x.copy()
    x[3500] += 10 * float(np.std(x[:3500]))
    assert await _incidents(x, s.t) == []


async def test_a_sustained_drift_opens_exactly_one_incident() -> None:
    s = _four_days()
    x = s.x.copy()
    per_day = 6 * float(np.std(x[:3500]))  # six of its spreads a day, and on
    x[3500:] += np.arange(x.size - 3500) * per_day / 1440
    opened = await _incidents(x, s.t)
    assert len({r.key for r in opened}) == 1
    first = opened[0]
    assert first.key == "anomaly:hall/temperature"
    assert first.emergency_type == "hvac_failure"
    # A slow drift: found once it exceeds the stream's usual excursions (about 10 h here).
    assert s.t[3500] < first.at < s.t[3500] + 18 * 3600


async def test_a_water_system_is_scored_from_its_devices_readings() -> None:
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), water=pump_config())
    out: Subscription[AnomalyScore] = water_scores(bus)
    rng = np.random.default_rng(3)
    async with running(service):
        for second in range(300):
            for r in pump_readings(rng, second, 32.0 if second < 250 else 20.0):
                bus.publish(r)
            await asyncio.sleep(0)  # let the service take a batch now and then
        scores = await take(out, 300)
    assert len(scores) == 300  # one row a second (row_interval_s = 1)
    assert {s.system for s in scores} == {"water_damage"}
    assert {s.model for s in scores} == {"water_system"}
    assert all(s.score == 0.0 for s in scores[:100])  # the calibration stretch
    assert all(s.score < s.threshold for s in scores[100:250])
    assert all(s.score >= s.threshold for s in scores[255:])  # the flow fell by a third


async def test_a_water_calibration_stretch_under_way_is_kept_at_stop(tmp_path: Path) -> None:
    water = pump_config(100, tmp_path / "water.json", calibrate_s=86_400.0)
    rng = np.random.default_rng(3)
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), water=water)  # no streams' state file
    out: Subscription[AnomalyScore] = water_scores(bus)
    async with running(service):
        for second in range(120):
            for r in pump_readings(rng, second, 32.0):
                bus.publish(r)
        await take(out, 120)
    assert service.water_status() == {
        "calibrated": False,
        "restored": False,
        "rows": 120,
        "rows_needed": 100,
        "seconds": 119.0,
        "seconds_needed": 86_400.0,
        "note": None,
    }
    again = AnomalyService(bus=Bus(), clock=Clock(), water=water)
    async with running(again):
        status = again.water_status()
    assert status is not None
    assert (status["restored"], status["rows"], status["calibrated"]) == (True, 120, False)


async def test_a_refused_water_model_leaves_the_univariate_one_running(tmp_path: Path) -> None:
    for name in ("univariate", "water_system"):
        for suffix in (".onnx", ".card.json"):
            shutil.copy(runtime.MODELS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    (tmp_path / "water_system.onnx").write_bytes(b"not the model")
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), water=pump_config(), models_dir=tmp_path)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        for r in pump_readings(np.random.default_rng(1), 0, 32.0):
            bus.publish(r)
        scores = await take(out, 6)
    assert service.problem is not None
    assert "water_system" in service.problem
    assert {s.model for s in scores} == {"univariate"}
    assert len(scores) == 6


async def test_ignored_devices_and_streams_are_not_scored() -> None:
    bus = Bus()
    service = AnomalyService(
        bus=bus, clock=Clock(), pace_s=0, ignore=frozenset({"pool-pump", "freezer/temperature"})
    )
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        for i in range(3):
            bus.publish(Reading("pool-pump", Measurement.POWER, 900.0, T0 + i))
            bus.publish(Reading("freezer", Measurement.TEMPERATURE, -18.0, T0 + i))
            bus.publish(Reading("freezer", Measurement.POWER, 80.0, T0 + i))
        scores = await take(out, 3)
    assert {s.stream for s in scores} == {"freezer/power"}
    assert service.streams == 1
