"""Learned liveness, with an injected clock: learned interval, silent device, silent bridge,
battery, recovery, and the incidents they open and resolve (through the real store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.mqtt.adapter import BusSink
from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.service import BROKER_BRIDGE_ID, MqttService
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.clock import SystemClock
from hub.config import MqttSection
from hub.events import Availability, HealthChanged, IncidentChanged, Reading
from hub.incident import Incident, Status
from hub.incident_service import IncidentService
from hub.liveness import DeviceProfile, Health, LivenessTracker
from hub.liveness_service import LivenessService
from hub.measurements import Measurement
from hub.store import DbWorker
from hub.store import incidents as incident_repo
from hub.store import readings as readings_repo
from rules.device_health import DeviceHealthRule
from tests.broker import Broker
from tests.sync_support import T0, FakeClock

MIN = 60.0
HOUR = 3600.0
LEAK = Measurement.WATER_LEAK


def _dry(device: str, at: float) -> Reading:
    return Reading(device, LEAK, False, at)


def _report_every(
    tracker: LivenessTracker, device: str, every: float, n: int, start: float
) -> float:
    at = start
    for _ in range(n):
        tracker.reading(_dry(device, at), at)
        at += every
    return at - every  # the last report's time


def test_a_battery_leak_sensor_reporting_every_50_min_is_not_late_at_55() -> None:
    tracker = LivenessTracker({"leak": DeviceProfile()}, start=T0)
    last = _report_every(tracker, "leak", 50 * MIN, 6, T0)
    assert tracker.expected_interval("leak") == 50 * MIN
    assert tracker.assess(last + 55 * MIN).devices["leak"].health is Health.OK
    assert tracker.assess(last + 149 * MIN).devices["leak"].health is Health.OK
    status = tracker.assess(last + 151 * MIN).devices["leak"]  # 3 x 50 min
    assert status.health is Health.SILENT
    assert status.critical  # it reports a leak state
    assert status.timeout_s == 150 * MIN


def test_bursts_are_one_report_and_the_median_ignores_one_odd_gap() -> None:
    tracker = LivenessTracker({"plug": DeviceProfile(mains=True)}, start=T0)
    at = T0
    for i in range(8):
        tracker.reading(Reading("plug", Measurement.POWER, 10.0, at), at)
        tracker.reading(Reading("plug", Measurement.VOLTAGE, 230.0, at), at + 0.2)  # same burst
        at += 300.0 if i != 4 else 2000.0
    assert tracker.expected_interval("plug") == 300.0


def test_floor_and_ceiling_per_kind() -> None:
    tracker = LivenessTracker(
        {"meter": DeviceProfile(mains=True), "thermo": DeviceProfile()}, start=T0
    )
    _report_every(tracker, "meter", 5.0, 10, T0)  # chatty: 3 x 5 s is under the 2 min floor
    _report_every(tracker, "thermo", 20 * HOUR, 4, T0)  # 3 x 20 h is over the 25 h ceiling
    verdict = tracker.assess(T0)
    assert verdict.devices["meter"].timeout_s == 2 * MIN
    assert verdict.devices["thermo"].timeout_s == 25 * HOUR


def test_before_learning_the_kind_ceiling_applies_from_start() -> None:
    tracker = LivenessTracker({"valve": DeviceProfile(mains=True, critical=True)}, start=T0)
    assert tracker.assess(T0 + 59 * MIN).devices["valve"].health is Health.LEARNING
    silent = tracker.assess(T0 + 61 * MIN).devices["valve"]
    assert silent.health is Health.SILENT
    assert silent.expected_interval_s is None


def test_a_mains_device_that_reports_a_battery_gets_the_battery_limits() -> None:
    tracker = LivenessTracker({"valve": DeviceProfile(mains=True)}, start=T0)
    tracker.reading(Reading("valve", Measurement.BATTERY, 80.0, T0), T0)
    assert tracker.assess(T0 + 2 * HOUR).devices["valve"].health is Health.LEARNING


def test_battery_low_has_hysteresis_and_a_reported_flag_counts() -> None:
    tracker = LivenessTracker({"a": DeviceProfile(), "b": DeviceProfile()}, start=T0)
    for pct, low in ((40.0, False), (14.0, True), (20.0, True), (24.9, True), (25.0, False)):
        tracker.reading(Reading("a", Measurement.BATTERY, pct, T0), T0)
        assert tracker.assess(T0).devices["a"].battery_low is low, pct
    tracker.reading(Reading("b", Measurement.BATTERY_LOW, True, T0), T0)
    assert tracker.assess(T0).devices["b"].battery_low


def test_silent_bridge_is_one_problem_not_one_per_device() -> None:
    z2m = DeviceProfile(bridges=("mqtt-broker", "zigbee2mqtt"))
    radio = DeviceProfile(bridges=("mqtt-broker", "rtl_433"))
    profiles = {f"z{i}": z2m for i in range(5)} | {"r1": radio, "r2": radio}
    tracker = LivenessTracker(profiles, start=T0, inferred_bridges=frozenset({"rtl_433"}))
    for d in profiles:
        _report_every(tracker, d, 10 * MIN, 5, T0)
    last = T0 + 40 * MIN
    tracker.availability("zigbee2mqtt", False, last)
    early = tracker.assess(last + 30)  # inside the bridge's grace period
    assert early.bridges_down == {}
    later = tracker.assess(last + 31 * MIN)  # Zigbee bridge said offline; the radio went quiet
    assert later.bridges_down == {
        "zigbee2mqtt": "offline",
        "rtl_433": "all its devices are silent",
    }
    assert {s.health for s in later.devices.values()} == {Health.BRIDGE_DOWN}
    assert later.devices["z3"].bridge == "zigbee2mqtt"
    # The broker itself goes down: it is the one problem; the bridges behind it are not reported.
    tracker.availability("mqtt-broker", False, last + 31 * MIN)
    broker = tracker.assess(last + 33 * MIN)
    assert broker.bridges_down == {"mqtt-broker": "offline"}
    assert broker.devices["r1"].bridge == "mqtt-broker"


def test_one_silent_device_behind_a_healthy_bridge_is_the_device() -> None:
    profile = DeviceProfile(bridges=("rtl_433",))
    tracker = LivenessTracker(
        {"r1": profile, "r2": profile}, start=T0, inferred_bridges=frozenset({"rtl_433"})
    )
    _report_every(tracker, "r1", 10 * MIN, 5, T0)
    last = _report_every(tracker, "r2", 10 * MIN, 8, T0)
    verdict = tracker.assess(last + 5 * MIN)
    assert verdict.bridges_down == {}
    assert verdict.devices["r1"].health is Health.SILENT
    assert verdict.devices["r2"].health is Health.OK


def test_a_device_that_says_offline_is_offline_until_it_says_online() -> None:
    tracker = LivenessTracker({"valve": DeviceProfile(critical=True)}, start=T0)
    tracker.availability("valve", False, T0)
    assert tracker.assess(T0 + 1).devices["valve"].health is Health.OFFLINE
    tracker.availability("valve", True, T0 + 2)
    assert tracker.assess(T0 + 3).devices["valve"].health is Health.LEARNING


def test_discovered_devices_are_tracked_up_to_a_bound() -> None:
    tracker = LivenessTracker({}, start=T0, max_devices=2)
    for i in range(3):
        tracker.add(f"d{i}", DeviceProfile(), T0)
    assert sorted(tracker.assess(T0).devices) == ["d0", "d1"]


# -- service + rule + store ---------------------------------------------------------------------


class _Hub:
    """Liveness service, device-health rule and incident service on one bus and a real store."""

    def __init__(self, bus: Bus, db: DbWorker, clock: FakeClock, tracker: LivenessTracker) -> None:
        self.bus = bus
        self.db = db
        self.liveness = LivenessService(
            bus=bus,
            db=db,
            clock=clock,
            tracker=tracker,
            discovered_profile=lambda _event: DeviceProfile(),
        )
        self.changes = bus.subscribe("test-health", (HealthChanged,))
        self.written = bus.subscribe("test-incidents", (IncidentChanged,))
        self.services = (
            IncidentService(bus=bus, db=db, hub_id="hub-1"),
            DeviceHealthRule(bus=bus, locations={"leak": "kitchen"}),
        )

    async def incidents(self, revisions: int) -> list[Incident]:
        """Wait until `revisions` more incident revisions are written; the newest of each."""
        await self.written.wait(revisions)
        latest = {e.incident.id: e.incident for e in self.written.drain()}
        return list(latest.values())


async def test_silent_leak_sensor_opens_one_incident_that_recovery_resolves(
    tmp_path: Path, clock: FakeClock
) -> None:
    bus = Bus()
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        await db.run(
            readings_repo.register_devices,
            [readings_repo.DeviceRow("leak", "native", "leak", "kitchen", None, None, "config")],
        )
        tracker = LivenessTracker(
            {"leak": DeviceProfile(), "thermo": DeviceProfile()}, start=clock.monotonic()
        )
        hub = _Hub(bus, db, clock, tracker)
        tasks = [tg.create_task(s.run()) for s in hub.services]
        for i in range(5):
            clock.t = T0 + i * 50 * MIN
            bus.publish(_dry("leak", T0 + i * 50 * MIN))
            bus.publish(Reading("thermo", Measurement.TEMPERATURE, 20.0, T0 + i * 50 * MIN))
        clock.t = T0 + 4 * 50 * MIN + 151 * MIN
        await hub.liveness.check()
        await hub.liveness.check()  # nothing changed: nothing announced again
        assert [(c.subject, c.problems) for c in hub.changes.drain()] == [
            ("leak", ("silent",)),
            ("thermo", ("silent",)),
        ]
        [incident] = await hub.incidents(1)  # the thermometer is not critical: no incident
        assert incident.key == "device_health:leak"
        assert incident.emergency_type.value == "device_health"
        assert incident.severity.value == "high"
        assert incident.location == "kitchen"
        assert incident.title == "leak is silent"
        assert incident.evidence[0].value == "silent"
        table = {d["id"]: d for d in await db.run(readings_repo.device_table)}
        assert table["leak"]["health"] == "silent"
        assert table["leak"]["expected_interval_s"] == 50 * MIN

        clock.t += 60
        bus.publish(_dry("leak", clock.t))
        await hub.liveness.check()
        [resolved] = await hub.incidents(1)
        assert resolved.id == incident.id
        assert resolved.status is Status.RESOLVED
        assert resolved.revision == incident.revision + 1
        assert hub.written.drain() == []
        assert await db.run(lambda d: incident_repo.list_incidents(d, open_only=True)) == []
        for t in tasks:
            t.cancel()


async def test_dead_bridge_opens_one_bridge_incident_and_no_device_incidents(
    tmp_path: Path, clock: FakeClock
) -> None:
    bus = Bus()
    z2m = DeviceProfile(bridges=("mqtt-broker", "zigbee2mqtt"))
    devices = [f"leak{i}" for i in range(50)]
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        tracker = LivenessTracker(dict.fromkeys(devices, z2m), start=clock.monotonic())
        hub = _Hub(bus, db, clock, tracker)
        tasks = [tg.create_task(s.run()) for s in hub.services]
        for i in range(5):
            clock.t = T0 + i * 10 * MIN
            for d in devices:
                bus.publish(_dry(d, T0 + i * 10 * MIN))
        bus.publish(Availability("zigbee2mqtt", False, T0 + 40 * MIN))
        clock.t = T0 + 2 * HOUR
        await hub.liveness.check()
        [incident] = await hub.incidents(1)
        assert incident.key == "bridge_health:zigbee2mqtt"
        assert incident.title == "Bridge zigbee2mqtt is down"
        bus.publish(Availability("zigbee2mqtt", True, clock.t))
        for d in devices:
            bus.publish(_dry(d, clock.t))
        await hub.liveness.check()
        [resolved] = await hub.incidents(1)
        assert (resolved.id, resolved.status) == (incident.id, Status.RESOLVED)
        assert await db.run(lambda d: incident_repo.list_incidents(d, open_only=True)) == []
        for t in tasks:
            t.cancel()


async def test_low_battery_opens_a_low_severity_incident_for_any_device(
    tmp_path: Path, clock: FakeClock
) -> None:
    bus = Bus()
    async with DbWorker(tmp_path) as db, asyncio.TaskGroup() as tg:
        tracker = LivenessTracker({"thermo": DeviceProfile()}, start=clock.monotonic())
        hub = _Hub(bus, db, clock, tracker)
        tasks = [tg.create_task(s.run()) for s in hub.services]
        bus.publish(Reading("thermo", Measurement.BATTERY, 9.0, T0))
        await hub.liveness.check()
        [incident] = await hub.incidents(1)
        assert (incident.key, incident.severity.value) == ("device_health:thermo", "low")
        assert incident.title == "thermo has a low battery"
        clock.t = T0 + 60
        bus.publish(Reading("thermo", Measurement.BATTERY, 100.0, T0 + 60))
        await hub.liveness.check()
        [resolved] = await hub.incidents(1)
        assert resolved.status is Status.RESOLVED
        for t in tasks:
            t.cancel()


async def test_the_broker_link_is_a_bridge_with_its_own_availability(own_broker: Broker) -> None:
    bus = Bus()
    links = bus.subscribe("links", (Availability,), where=lambda a: a.device_id == BROKER_BRIDGE_ID)
    sink = BusSink(bus, BadInputLog())
    mqtt = MqttService(
        config=MqttSection(host=own_broker.host, port=own_broker.port),
        hub_id="hub-links",
        adapters=[NativeAdapter([], sink, 65536)],
        sink=sink,
        bus=bus,
        clock=SystemClock(),
        retained_snapshot=_no_incidents,
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(mqtt.run())
        await asyncio.wait_for(links.wait(1), 10)
        own_broker.stop()
        await asyncio.wait_for(links.wait(2), 10)
        assert [a.online for a in links.drain()] == [True, False]
        task.cancel()


async def _no_incidents() -> list[Incident]:
    return []


def test_what_was_learned_before_a_restart_is_remembered_but_not_the_last_report() -> None:
    tracker = LivenessTracker(
        {"leak": DeviceProfile(), "valve": DeviceProfile(mains=True)}, start=T0
    )
    tracker.remember("leak", 50 * MIN, frozenset({"water_leak", "battery"}))
    tracker.remember("valve", None, frozenset({"valve", "battery"}))
    tracker.remember("gone", 60.0, frozenset())  # no longer configured: ignored
    leak = tracker.assess(T0 + 149 * MIN).devices["leak"]
    assert (leak.health, leak.expected_interval_s, leak.critical) == (Health.OK, 50 * MIN, True)
    # silence counts from start-up (the hub was not listening before), not from the last report
    assert tracker.assess(T0 + 151 * MIN).devices["leak"].health is Health.SILENT
    # the valve reported a battery before: it keeps the battery limits, not the 1 h mains one
    assert tracker.assess(T0 + 2 * HOUR).devices["valve"].health is Health.LEARNING


async def test_the_service_restores_what_it_saved_in_an_earlier_run(
    tmp_path: Path, clock: FakeClock
) -> None:
    row = readings_repo.DeviceRow("leak", "zigbee2mqtt", "Leak", "kitchen", None, None, "config")
    async with DbWorker(tmp_path) as db:
        await db.run(readings_repo.register_devices, [row])
        first = LivenessService(
            bus=Bus(),
            db=db,
            clock=clock,
            tracker=LivenessTracker({"leak": DeviceProfile()}, start=clock.monotonic()),
            discovered_profile=lambda _event: DeviceProfile(),
        )
        for i in range(4):
            clock.t = T0 + i * 50 * MIN
            first._bus.publish(_dry("leak", T0 + i * 50 * MIN))
        await first.check()
        await db.run(
            readings_repo.record, [_dry("leak", T0)], [readings_repo.SeenUpdate("leak", T0, True)]
        )
        clock.t = T0 + 10 * HOUR  # a restart: a new monotonic clock, which the tracker's start is
        later = clock.monotonic()
        tracker = LivenessTracker({"leak": DeviceProfile()}, start=later)
        second = LivenessService(
            bus=Bus(),
            db=db,
            clock=clock,
            tracker=tracker,
            discovered_profile=lambda _event: DeviceProfile(),
            interval_s=3600,
        )
        await second.restore()  # what `run` does first
    status = tracker.assess(later + 151 * MIN).devices["leak"]
    assert (status.expected_interval_s, status.health, status.critical) == (
        50 * MIN,
        Health.SILENT,
        True,
    )


def test_discovered_devices_are_heard_through_the_right_bridge() -> None:
    from hub import wiring
    from hub.config import parse_config
    from hub.events import DeviceDiscovered

    config = parse_config(
        {
            "devices": [
                {"id": "meter", "adapter": "modbus", "port": "/dev/ttyUSB0", "model": "SDM630"}
            ]
        }
    )

    def found(device_id: str, adapter: str) -> DeviceProfile | None:
        return wiring._discovered_profile(
            config, DeviceDiscovered(device_id, adapter, "", None, (), T0)
        )

    phase = found("meter-l2", "modbus")
    assert phase is not None
    assert phase.bridges == ("serial:/dev/ttyUSB0",)
    assert (
        found("ble-a4c1388d18b2", "xiaomi") is None
    )  # a neighbour's sensor: not read, not watched
    zigbee = found("z2m-new-plug", "zigbee2mqtt")
    assert zigbee is not None
    assert zigbee.bridges == ("mqtt-broker", "zigbee2mqtt-bridge")


def test_a_bluetooth_adapter_that_dies_quietly_is_one_bridge_problem() -> None:
    from hub import wiring
    from hub.config import parse_config

    flood = {"adapter": "xiaomi"}
    config = parse_config(
        {
            "devices": [
                {**flood, "id": "laundry", "address": "54:EF:44:E0:27:BC"},
                {**flood, "id": "kitchen", "address": "54:EF:44:E0:27:BD"},
            ]
        }
    )
    assert wiring._inferred_bridges(config) == {"rtl_433", "ble:hci0"}
    assert wiring._inferred_bridges(parse_config({})) == {"rtl_433"}
