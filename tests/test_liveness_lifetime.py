"""Liveness over a hub's life: restarts, wall-clock steps, forgotten devices, bursts of reports,
and a battery judged by both what it reports (each a defect a reviewer reproduced)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from drivers.mqtt.zigbee2mqtt import Zigbee2MqttAdapter
from hub import wiring
from hub.bus import Bus, Subscription
from hub.config import parse_config
from hub.events import (
    DeviceDiscovered,
    DeviceForgotten,
    IncidentChanged,
    Reading,
)
from hub.incident import Status
from hub.incident_service import IncidentService
from hub.liveness import DeviceProfile, Health, LivenessTracker
from hub.liveness_service import LivenessService
from hub.measurements import Measurement
from hub.store import DbWorker
from hub.store import incidents as incident_repo
from hub.store import readings as readings_repo
from rules.device_health import DeviceHealthRule
from tests.adapter_support import Sink
from tests.helpers import StepClock
from tests.sync_support import T0, FakeClock

MIN = 60.0
HOUR = 3600.0
DAY = 24 * HOUR
LEAK = Measurement.WATER_LEAK
BASEMENT = DeviceDiscovered(
    "z2m-basement-leak", "zigbee2mqtt", "Basement Leak", "SJCGQ11LM", ("battery", "water_leak"), T0
)


def _dry(device: str, at: float) -> Reading:
    return Reading(device, LEAK, False, at)


def _service(
    bus: Bus, db: DbWorker, clock: FakeClock | StepClock, tracker: LivenessTracker
) -> LivenessService:
    return LivenessService(
        bus=bus, db=db, clock=clock, tracker=tracker, discovered_profile=lambda _e: DeviceProfile()
    )


async def _incident_pipeline(
    bus: Bus, db: DbWorker, tg: asyncio.TaskGroup
) -> list[asyncio.Task[None]]:
    services = (
        IncidentService(bus=bus, db=db, hub_id="hub-1"),
        DeviceHealthRule(bus=bus, locations={}),
    )
    return [tg.create_task(s.run()) for s in services]


async def _open_incidents(db: DbWorker) -> list[tuple[str, str]]:
    opened = await db.run(lambda d: incident_repo.list_incidents(d, open_only=True))
    return sorted((i.key, i.title) for i in opened)


# -- 1. a discovered leak sensor across a restart -----------------------------------------------


def test_what_was_remembered_of_a_device_applies_when_it_is_discovered_later() -> None:
    tracker = LivenessTracker({}, start=0.0)
    tracker.remember("z2m-basement-leak", 50 * MIN, frozenset({"water_leak", "battery"}))
    tracker.add("z2m-basement-leak", DeviceProfile(), 10.0)
    status = tracker.assess(10.0 + 151 * MIN).devices["z2m-basement-leak"]
    assert (status.expected_interval_s, status.health, status.critical) == (
        50 * MIN,
        Health.SILENT,
        True,
    )


def test_a_discovered_leak_or_smoke_sensor_is_critical_before_it_reports() -> None:
    config = parse_config({})
    critical = {}
    for device_id, exposes in (
        ("leak", ("battery", "water_leak")),
        ("smoke", ("smoke",)),
        ("plug", ("power",)),
    ):
        event = DeviceDiscovered(device_id, "zigbee2mqtt", device_id, None, exposes, T0)
        profile = wiring._discovered_profile(config, event)
        assert profile is not None
        critical[device_id] = profile.critical
    assert critical == {"leak": True, "smoke": True, "plug": False}


async def test_a_saved_interval_is_not_overwritten_while_the_device_learns(
    tmp_path: Path,
) -> None:
    row = readings_repo.DeviceRow("leak", "native", "leak", None, None, None, "config")
    async with DbWorker(tmp_path) as db:
        await db.run(readings_repo.register_devices, [row])
        await db.run(
            readings_repo.save_health, [readings_repo.HealthRow("leak", "ok", 3000.0, 9000.0)]
        )
        await db.run(
            readings_repo.save_health, [readings_repo.HealthRow("leak", "learning", None, 90000.0)]
        )
        [memory] = await db.run(readings_repo.liveness_memory)
    assert memory.expected_interval_s == 3000.0


# -- 2. wall-clock steps --------------------------------------------------------------------------


async def test_a_wall_clock_step_back_does_not_blind_liveness(tmp_path: Path) -> None:
    clock = StepClock(T0)
    clock.wall += 3 * 365 * DAY  # booted with a clock years ahead
    bus = Bus()
    async with DbWorker(tmp_path) as db:
        tracker = LivenessTracker({"leak": DeviceProfile()}, start=clock.monotonic())
        service = _service(bus, db, clock, tracker)
        for _ in range(6):
            bus.publish(_dry("leak", clock.now()))
            clock.tick(50 * MIN)
        clock.wall = T0  # NTP steps back to the true time
        for _ in range(30):
            bus.publish(_dry("leak", clock.now()))
            clock.tick(50 * MIN)
        clock.tick(101 * MIN)  # then the sensor dies: 151 min since its last report
        assessment = await service.check()
    assert assessment.devices["leak"].health is Health.SILENT


async def test_a_wall_clock_step_forward_silences_nothing(tmp_path: Path) -> None:
    clock = StepClock(T0)
    radio = DeviceProfile(bridges=("mqtt-broker", "rtl_433"))
    profiles = {
        "valve": DeviceProfile(critical=True),
        "leak": DeviceProfile(),
        "rtl-a": radio,
        "rtl-b": radio,
    }
    bus = Bus()
    async with DbWorker(tmp_path) as db:
        tracker = LivenessTracker(
            profiles, start=clock.monotonic(), inferred_bridges=frozenset({"rtl_433"})
        )
        tracker.remember("leak", 50 * MIN, frozenset({"water_leak"}))
        service = _service(bus, db, clock, tracker)
        clock.wall -= 60 * DAY  # fake-hwclock: the time of the last shutdown
        for device in ("leak", "rtl-a", "rtl-b"):
            clock.tick(5)
            bus.publish(_dry(device, clock.now()))
        clock.wall += 60 * DAY  # NTP steps forward
        clock.tick(30)
        assessment = await service.check()
    assert assessment.bridges_down == {}
    assert {d: s.health for d, s in assessment.devices.items()} == {
        "valve": Health.LEARNING,
        "leak": Health.OK,
        "rtl-a": Health.LEARNING,
        "rtl-b": Health.LEARNING,
    }


def test_times_that_go_back_never_freeze_the_tracker() -> None:
    tracker = LivenessTracker({"leak": DeviceProfile()}, start=10 * DAY)
    for i in range(6):
        tracker.reading(_dry("leak", 0.0), 10 * DAY + i * 50 * MIN)
    at = 0.0  # a caller whose clock went back
    for _ in range(5):
        tracker.reading(_dry("leak", 0.0), at)
        at += 50 * MIN
    assert tracker.assess(at - 50 * MIN + 151 * MIN).devices["leak"].health is Health.SILENT


# -- 3. incidents open at a restart ---------------------------------------------------------------


async def test_health_incidents_open_before_a_restart_resolve_after_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    rows = [
        readings_repo.DeviceRow(d, "native", d, None, None, None, "config")
        for d in ("leak", "thermo", "old")
    ]
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        await db.run(readings_repo.register_devices, rows)
        bus = Bus()
        written = bus.subscribe("written", (IncidentChanged,))
        tasks = await _incident_pipeline(bus, db, tg)
        profiles = dict.fromkeys(("leak", "thermo", "old"), DeviceProfile())
        first = _service(bus, db, clock, LivenessTracker(profiles, start=clock.monotonic()))
        for i in range(5):
            clock.t = T0 + i * 50 * MIN
            bus.publish(_dry("leak", clock.t))
            bus.publish(_dry("old", clock.t))
        bus.publish(Reading("thermo", Measurement.BATTERY, 9.0, clock.t))
        clock.t += 151 * MIN
        await first.check()
        await asyncio.wait_for(written.wait(3), 5)
        assert [k for k, _ in await _open_incidents(db)] == [
            "device_health:leak",
            "device_health:old",
            "device_health:thermo",
        ]
        for t in tasks:
            t.cancel()
    # restart: the leak sensor was fixed and the battery replaced; "old" left the configuration
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        await db.run(readings_repo.forget_unconfigured, {"leak", "thermo"})
        bus = Bus()
        written = bus.subscribe("written", (IncidentChanged,))
        tasks = await _incident_pipeline(bus, db, tg)
        profiles = dict.fromkeys(("leak", "thermo"), DeviceProfile())
        second = _service(bus, db, clock, LivenessTracker(profiles, start=clock.monotonic()))
        await second.restore()
        clock.t += HOUR
        bus.publish(_dry("leak", clock.t))
        bus.publish(Reading("thermo", Measurement.BATTERY, 100.0, clock.t))
        await second.check()
        await asyncio.wait_for(written.wait(3), 5)
        assert {e.incident.status for e in written.drain()} == {Status.RESOLVED}
        assert await _open_incidents(db) == []
        for t in tasks:
            t.cancel()


# -- 4. a device its ecosystem forgets ------------------------------------------------------------


def _z2m_list(name: str) -> bytes:
    entry = {
        "friendly_name": name,
        "type": "EndDevice",
        "definition": {
            "model": "SJCGQ11LM",
            "exposes": [{"type": "binary", "property": "water_leak"}],
        },
    }
    return json.dumps([entry]).encode()


def test_zigbee2mqtt_says_which_learned_device_it_forgot() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter([], sink, 65536)
    z2m.decode("zigbee2mqtt/bridge/devices", _z2m_list("Basement Leak"), 1.0)
    z2m.decode("zigbee2mqtt/bridge/devices", _z2m_list("Laundry Leak"), 2.0)
    assert [e for e in sink.events if isinstance(e, DeviceForgotten)] == [
        DeviceForgotten("z2m-basement-leak", "zigbee2mqtt", 2.0)
    ]


async def test_a_forgotten_device_is_dropped_and_its_incident_resolved(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        bus = Bus()
        written = bus.subscribe("written", (IncidentChanged,))
        tasks = await _incident_pipeline(bus, db, tg)
        tracker = LivenessTracker({}, start=clock.monotonic())
        service = _service(bus, db, clock, tracker)
        bus.publish(BASEMENT)
        for i in range(5):
            clock.t = T0 + i * 50 * MIN
            bus.publish(_dry(BASEMENT.device_id, clock.t))
        clock.t += 151 * MIN
        await service.check()
        [opened] = [e.incident for e in await _drain(written, 1)]
        assert opened.title == "z2m-basement-leak is silent"
        bus.publish(DeviceForgotten(BASEMENT.device_id, "zigbee2mqtt", clock.t))
        [resolved] = [e.incident for e in await _drain(written, 1)]
        assert (resolved.id, resolved.status) == (opened.id, Status.RESOLVED)
        clock.t += DAY
        assessment = await service.check()
        assert assessment.devices == {}
        assert await _open_incidents(db) == []
        for t in tasks:
            t.cancel()


async def _drain(sub: Subscription[IncidentChanged], n: int) -> list[IncidentChanged]:
    await asyncio.wait_for(sub.wait(n), 5)
    return sub.drain()


# -- 6. a burst of reports ------------------------------------------------------------------------


def test_a_burst_of_reports_does_not_make_the_next_heartbeat_late() -> None:
    tracker = LivenessTracker({"leak": DeviceProfile()}, start=0.0)
    at = 0.0
    for _ in range(20):  # its heartbeat: every 50 min
        tracker.reading(_dry("leak", 0.0), at)
        at += 50 * MIN
    at += 5 * MIN - 50 * MIN
    for _ in range(16):  # a leak being mopped up: a change every 30 s for 8 minutes
        tracker.reading(_dry("leak", 0.0), at)
        at += 30
    at -= 30
    for _ in range(15):  # back to its heartbeat; never silent in between
        for minute in (10, 30, 49):
            assert tracker.assess(at + minute * MIN).devices["leak"].health is Health.OK
        at += 50 * MIN
        tracker.reading(_dry("leak", 0.0), at)
    # and it still notices when the sensor dies
    assert tracker.assess(at + 151 * MIN).devices["leak"].health is Health.SILENT


# -- 7. battery -----------------------------------------------------------------------------------


def test_a_battery_is_low_when_either_its_percentage_or_its_flag_says_so() -> None:
    tracker = LivenessTracker({"a": DeviceProfile(), "b": DeviceProfile()}, start=0.0)
    low: dict[str, bool] = {}
    for device, pct, flag in (("a", 12.0, False), ("b", 80.0, True)):
        tracker.reading(Reading(device, Measurement.BATTERY, pct, 0.0), 0.0)
        tracker.reading(Reading(device, Measurement.BATTERY_LOW, flag, 0.0), 0.0)
        low[device] = tracker.assess(0.0).devices[device].battery_low
    assert low == {"a": True, "b": True}
    tracker.reading(Reading("a", Measurement.BATTERY, 90.0, 0.0), 0.0)  # replaced
    assert not tracker.assess(0.0).devices["a"].battery_low
