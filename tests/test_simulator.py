"""The device simulator: pure payload builders, and the real MQTT traffic against Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest

from drivers.simulator import (
    MOTOR_DELAY_S,
    SIMULATED_DEVICES,
    Scenario,
    SimulatedDevice,
    run_simulator,
)
from drivers.simulator._bridge import bridge_devices
from drivers.simulator.models import DryerPlug, Model, WaterMeter, World, build_models
from drivers.simulator.payloads import aqara_leak_payload, encode, siren_target, valve_target
from hub import topics
from tests.broker import Broker, free_port

WAIT_S = 5.0
ZIGBEE = [d for d in SIMULATED_DEVICES if d.adapter == "zigbee2mqtt"]


def _device(device_id: str) -> SimulatedDevice:
    return next(d for d in SIMULATED_DEVICES if d.id == device_id)


VALVE = _device("main-valve")
SIREN = _device("hall-siren")
KITCHEN = _device("kitchen-leak")


# --- pure ---------------------------------------------------------------------------------------


def test_catalog() -> None:
    ids = [d.id for d in SIMULATED_DEVICES]
    assert len(ids) == len(set(ids))
    assert set(ids) == {
        "kitchen-leak",
        "bathroom-leak",
        "main-valve",
        "hall-siren",
        "living-climate",
        "basement-temp",
        "water-meter",
        "dryer-plug",
    }
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
    for d in SIMULATED_DEVICES:
        assert d.adapter in {"zigbee2mqtt", "native"}
        if d.adapter == "native":
            assert d.name == d.id
    assert {d.id: d.role for d in SIMULATED_DEVICES if d.role} == {
        "main-valve": "water_valve",
        "hall-siren": "siren",
    }
    assert [d.name for d in ZIGBEE] == [
        "Kitchen Leak",
        "Bathroom Leak",
        "Main Water Valve",
        "Hall Siren",
        "Living Room Climate",
    ]


def test_aqara_leak_payload_matches_a_captured_one() -> None:
    captured = {
        "battery": 100,
        "battery_low": False,
        "device_temperature": 24,
        "linkquality": 87,
        "power_outage_count": 5,
        "tamper": False,
        "voltage": 3005,
        "water_leak": False,
    }
    built = aqara_leak_payload(
        water_leak=False,
        battery=100,
        voltage_mv=3005,
        device_temperature=24,
        power_outage_count=5,
        linkquality=87,
    )
    assert built == captured
    assert encode(built) == json.dumps(captured, separators=(",", ":")).encode()


def _exposes(entry: Any) -> dict[str, Any]:
    """Flatten an exposes list (features of switches and composites included) by property."""
    out: dict[str, Any] = {}
    for e in entry["definition"]["exposes"]:
        if "property" in e:
            out[e["property"]] = e
        for f in e.get("features", []):
            out.setdefault(f["property"], f)
    return out


def test_bridge_devices_in_zigbee2mqtt_format() -> None:
    devices = json.loads(encode(bridge_devices()))
    assert devices[0]["type"] == "Coordinator"
    by_name = {d["friendly_name"]: d for d in devices[1:]}
    assert set(by_name) == {d.name for d in ZIGBEE}
    for d in devices[1:]:
        assert re.fullmatch(r"0x[0-9a-f]{16}", d["ieee_address"])
        assert d["type"] in {"EndDevice", "Router"}
        assert d["supported"] is True
        assert {"model", "vendor", "description", "exposes"} <= set(d["definition"])
    leak = _exposes(by_name["Kitchen Leak"])["water_leak"]
    assert leak == leak | {"type": "binary", "value_on": True, "value_off": False, "access": 1}
    valve = by_name["Main Water Valve"]["definition"]["exposes"][0]
    assert valve["type"] == "switch"
    assert valve["features"][0] == valve["features"][0] | {
        "type": "binary",
        "property": "state",
        "value_on": "ON",
        "value_off": "OFF",
        "access": 7,
    }
    warning = _exposes(by_name["Hall Siren"])["warning"]
    assert warning["type"] == "composite"
    assert {f["property"] for f in warning["features"]} >= {"mode", "duration", "strobe"}
    climate = _exposes(by_name["Living Room Climate"])
    assert {p: climate[p]["unit"] for p in ("temperature", "humidity", "pressure")} == {
        "temperature": "°C",
        "humidity": "%",
        "pressure": "hPa",
    }


@pytest.mark.parametrize(
    ("payload", "is_open", "expected"),
    [
        (b'{"state":"OFF"}', True, False),
        (b'{"state": "on"}', False, True),
        (b"OFF", True, False),
        (b'{"state":"TOGGLE"}', True, False),
        (b'{"state":"TOGGLE"}', False, True),
        (b'{"brightness":3}', True, None),
        (b"not json", True, None),
        (b"", True, None),
        (b"[1]", True, None),
    ],
)
def test_valve_target(payload: bytes, is_open: bool, expected: bool | None) -> None:
    assert valve_target(payload, is_open=is_open) is expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"warning":{"mode":"emergency","duration":10,"strobe":true}}', True),
        (b'{"warning":{"duration":10}}', True),
        (b'{"warning":{"mode":"stop"}}', False),
        (b'{"state":"ON"}', True),
        (b'{"state":"OFF"}', False),
        (b"{}", None),
        (b"\xff", None),
    ],
)
def test_siren_target(payload: bytes, expected: bool | None) -> None:
    assert siren_target(payload) is expected


def test_models_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[bytes]:
        models, world = build_models(seed), World()
        return [encode(m.report(world, 5.0)) for _ in range(20) for m in models.values()]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_only_the_kitchen_gets_wet_and_only_during_a_leak() -> None:
    models, world = build_models(1), World()
    assert models["kitchen-leak"].report(world, 5)["water_leak"] is False
    world.leaking = True
    assert models["kitchen-leak"].report(world, 5)["water_leak"] is True
    assert models["bathroom-leak"].report(world, 5)["water_leak"] is False


def _report(model: Model, world: World) -> dict[str, Any]:
    """A report as the wire carries it."""
    return dict(json.loads(encode(model.report(world, 5.0))))


def test_water_meter_is_mostly_idle_with_bursts_and_shows_the_leak() -> None:
    meter, world = WaterMeter(random.Random(3)), World()
    flows = [_report(meter, world)["flow"] for _ in range(1000)]
    assert sum(f == 0 for f in flows) > 700
    assert max(flows) > 4
    world.leaking = True
    assert min(_report(meter, world)["flow"] for _ in range(50)) > 2
    world.valve_open = False
    closed = [_report(meter, world) for _ in range(50)]
    assert all(r["flow"] == 0 and 2.5 <= r["pressure"] <= 4 for r in closed)


def test_dryer_plug_counts_energy_up_and_keeps_mains_voltage() -> None:
    plug, world = DryerPlug(random.Random(5)), World()
    reports = [_report(plug, world) for _ in range(2000)]
    energy = [r["energy"] for r in reports]
    assert energy == sorted(energy)
    assert energy[-1] > energy[0]
    assert all(215 <= r["voltage"] <= 245 for r in reports)
    assert any(r["power"] > 1500 for r in reports)
    assert any(r["power"] < 1 for r in reports)
    for r in reports:
        assert r["current"] == pytest.approx(r["power"] / r["voltage"], rel=0.01, abs=0.002)


async def test_rejects_a_nonsensical_interval() -> None:
    with pytest.raises(ValueError, match="report_interval_s"):
        await run_simulator(host="127.0.0.1", port=1, report_interval_s=0)


# --- against a real broker ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator(broker: Broker, **kwargs: Any) -> AsyncIterator[str]:
    """Run the simulator under a fresh base topic; cancel it and check it ended by cancellation."""
    base = f"sim-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(
        run_simulator(host=broker.host, port=broker.port, base_topic=base, **kwargs)
    )
    try:
        yield base
    finally:
        await _cancel_and_check(task)


async def _cancel_and_check(task: asyncio.Task[None]) -> None:
    """Cancel `task` and insist it ends promptly, by that cancellation."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=WAIT_S)
    assert done, "the simulator did not stop when cancelled"
    if not task.cancelled():
        task.result()  # raises what it died of
        pytest.fail("the simulator swallowed its cancellation")


@contextlib.asynccontextmanager
async def peer(broker: Broker, *subscriptions: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"peer-{uuid.uuid4()}") as c:
        for topic in subscriptions:
            await c.subscribe(topic, qos=1)
        yield c


async def next_json(
    client: aiomqtt.Client,
    topic: str,
    accept: Callable[[Any, aiomqtt.Message], bool] = lambda data, message: True,
) -> tuple[Any, aiomqtt.Message]:
    """The next message on `topic` that `accept` likes, within WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        async for message in client.messages:
            if message.topic.matches(topic):
                assert isinstance(message.payload, bytes)
                data = json.loads(message.payload)
                if accept(data, message):
                    return data, message
    raise AssertionError("the message stream ended")


async def test_bridge_announces_retained_devices_and_availability(broker: Broker) -> None:
    async with simulator(broker, scenario=Scenario.NORMAL) as base:
        devices_topic = f"{base}/bridge/devices"
        async with peer(broker, devices_topic) as first:
            await next_json(first, devices_topic)  # now the broker holds all of the announcement
        wanted = {f"{base}/bridge/state", devices_topic}
        wanted |= {f"{base}/{d.name}/availability" for d in ZIGBEE}
        retained: dict[str, Any] = {}
        async with peer(broker, f"{base}/bridge/#", f"{base}/+/availability") as late:
            while set(retained) != wanted:
                data, message = await next_json(late, "#")
                assert message.retain
                retained[message.topic.value] = data
        names = {d["friendly_name"] for d in retained.pop(devices_topic)[1:]}
        assert names == {d.name for d in ZIGBEE}
        assert all(v == {"state": "online"} for v in retained.values())


async def test_a_clean_stop_says_offline(broker: Broker) -> None:
    async with simulator(broker, scenario=Scenario.NORMAL) as base:
        state_topic = f"{base}/bridge/state"
        async with peer(broker, state_topic) as c:
            await next_json(c, state_topic, lambda data, m: data == {"state": "online"})
    async with peer(broker, state_topic) as c:
        data, message = await next_json(c, state_topic)
        assert (data, message.retain) == ({"state": "offline"}, True)


async def test_valve_closes_when_told(broker: Broker) -> None:
    async with simulator(broker, scenario=Scenario.NORMAL, report_interval_s=60) as base:
        state_topic = f"{base}/{VALVE.name}"
        async with peer(broker, state_topic) as c:
            first, _ = await next_json(c, state_topic)
            assert first["state"] == "ON"
            await c.publish(f"{state_topic}/set", b'{"state":"OFF"}', qos=1)
            closed, message = await next_json(c, state_topic)
            assert closed["state"] == "OFF"
            assert isinstance(closed["linkquality"], int)
            assert message.retain is False  # live delivery; the broker keeps a retained copy
            await c.publish(f"{state_topic}/get", b'{"state":""}', qos=1)
            again, _ = await next_json(c, state_topic)
            assert again["state"] == "OFF"
        async with peer(broker, state_topic) as late:
            retained, message = await next_json(late, state_topic)
            assert (retained["state"], message.retain) == ("OFF", True)


async def test_stuck_valve_stays_open(broker: Broker) -> None:
    kwargs: dict[str, Any] = {"report_interval_s": 60, "motor_delay_s": 0.05}
    async with simulator(broker, scenario=Scenario.STUCK_VALVE, **kwargs) as base:
        state_topic = f"{base}/{VALVE.name}"
        async with peer(broker, state_topic) as c:
            first, _ = await next_json(c, state_topic)
            assert first["state"] == "ON"
            answered_on, reported_off = asyncio.Event(), asyncio.Event()

            async def watch() -> None:
                async for message in c.messages:
                    assert isinstance(message.payload, bytes)
                    state = json.loads(message.payload)["state"]
                    (reported_off if state == "OFF" else answered_on).set()

            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(watch())
                await c.publish(f"{state_topic}/set", b'{"state":"OFF"}', qos=1)
                await c.publish(f"{state_topic}/get", b'{"state":""}', qos=1)
                async with asyncio.timeout(WAIT_S):
                    await answered_on.wait()
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05 * 10):
                        await reported_off.wait()
                watcher.cancel()


async def test_kitchen_leak_turns_wet(broker: Broker) -> None:
    async with simulator(broker, leak_after_s=0.2, report_interval_s=60) as base:
        topic = f"{base}/{KITCHEN.name}"
        async with peer(broker, topic) as c:
            wet, _ = await next_json(c, topic, lambda data, m: data["water_leak"] is True)
            assert wet["battery"] == 100
            assert set(wet) == {
                "battery",
                "battery_low",
                "device_temperature",
                "linkquality",
                "power_outage_count",
                "tamper",
                "voltage",
                "water_leak",
            }


async def test_siren_sounds_when_warned(broker: Broker) -> None:
    async with simulator(broker, scenario=Scenario.NORMAL, report_interval_s=60) as base:
        topic = f"{base}/{SIREN.name}"
        async with peer(broker, topic, f"{base}/bridge/state") as c:
            await next_json(c, f"{base}/bridge/state")  # subscribed to /set by now
            warning = {"warning": {"mode": "emergency", "duration": 30, "strobe": True}}
            await c.publish(f"{topic}/set", json.dumps(warning), qos=1)
            state, message = await next_json(c, topic, lambda data, m: "state" in data)
            assert state["state"] == "ON"
            assert not message.retain


async def test_native_sensors_report_measurements(broker: Broker) -> None:
    expected = {
        "basement-temp": {"temperature", "humidity", "battery"},
        "water-meter": {"flow", "pressure"},
        "dryer-plug": {"power", "voltage", "current", "energy"},
    }
    async with (
        simulator(broker, scenario=Scenario.NORMAL, report_interval_s=0.1),
        peer(broker, topics.native_state("+")) as c,
    ):
        seen: dict[str, set[str]] = {}
        while seen != expected:
            data, message = await next_json(c, topics.native_state("+"))
            parsed = topics.parse_native(message.topic.value)
            assert parsed is not None
            assert parsed[1] == "state"
            assert not message.retain
            seen[parsed[0]] = set(data)
            assert all(isinstance(v, int | float) for v in data.values())


async def test_reconnects_after_the_broker_restarts(own_broker: Broker) -> None:
    async with simulator(own_broker, scenario=Scenario.NORMAL, report_interval_s=0.1) as base:
        climate = f"{base}/Living Room Climate"
        async with peer(own_broker, climate) as c:
            await next_json(c, climate)
        await asyncio.to_thread(own_broker.restart)
        async with peer(own_broker, climate) as c:
            data, _ = await next_json(c, climate, lambda data, m: not m.retain)
            assert 15 <= data["temperature"] <= 30


class _WarningSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


async def test_cancellation_while_no_broker_is_reraised() -> None:
    handler = _WarningSeen()
    logger = logging.getLogger("drivers.simulator")
    logger.addHandler(handler)
    try:
        task = asyncio.create_task(run_simulator(host="127.0.0.1", port=free_port()))
        async with asyncio.timeout(WAIT_S):
            await handler.seen.wait()  # it failed to connect and is backing off
        await _cancel_and_check(task)
    finally:
        logger.removeHandler(handler)


def test_motor_delay_default() -> None:
    assert 0 < MOTOR_DELAY_S <= 1
