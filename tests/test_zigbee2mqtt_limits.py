"""Zigbee2MQTT: what a hostile or broken network cannot do to the adapter.

A number too large for a float is refused on its own (the leak in the same payload is still read);
`bridge/devices` nested too deep is malformed JSON, not a RecursionError; learned devices are
bounded, before the device list arrives and in it; and each list replaces what was learned, so a
device removed from Zigbee2MQTT (or a stray topic) is forgotten.
"""

from __future__ import annotations

import json

import pytest

from drivers.mqtt.zigbee2mqtt import MAX_DEVICES, Zigbee2MqttAdapter
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink

BIG = b"1" + b"0" * 400  # a JSON integer; float() of it raises OverflowError
CONFIGURED = [DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak")]
BRIDGE = "zigbee2mqtt/bridge/devices"
LIMIT = "zigbee2mqtt learned devices"


def _devices(*names: str) -> bytes:
    entries = [{"friendly_name": "Coordinator", "type": "Coordinator"}]
    entries += [{"friendly_name": n, "type": "EndDevice"} for n in names]
    return json.dumps(entries).encode()


def _readings(sink: Sink) -> list[Reading]:
    return [e for e in sink.events if isinstance(e, Reading)]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"battery": 80, "voltage": ' + BIG + b', "water_leak": true}',  # mV, scaled: overflowed
        b'{"voltage": ' + BIG + b', "battery": 80, "water_leak": true}',
    ],
)
def test_a_voltage_too_large_for_a_float_is_refused_alone(payload: bytes) -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter(CONFIGURED, sink, 65536)
    z2m.decode("zigbee2mqtt/Kitchen Leak", payload, 1.0)
    assert _readings(sink) == [
        Reading("kitchen-leak", M.BATTERY, 80.0, 1.0),
        Reading("kitchen-leak", M.WATER_LEAK, True, 1.0),
    ]
    assert sink.refused == [("kitchen-leak", BadInputReason.OUT_OF_RANGE)]


def test_a_voltage_in_mv_by_exposes_too_large_for_a_float_is_refused_alone() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter(CONFIGURED, sink, 65536)
    exposes = [{"property": "voltage", "unit": "mV"}, {"property": "water_leak"}]
    device = {"friendly_name": "Kitchen Leak", "definition": {"model": "m", "exposes": exposes}}
    z2m.decode(BRIDGE, json.dumps([device]).encode(), 1.0)
    z2m.decode("zigbee2mqtt/Kitchen Leak", b'{"voltage": ' + BIG + b', "water_leak": true}', 2.0)
    assert _readings(sink) == [Reading("kitchen-leak", M.WATER_LEAK, True, 2.0)]
    assert sink.refused == [("kitchen-leak", BadInputReason.OUT_OF_RANGE)]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_bridge_devices_nested_too_deep_is_malformed_json(depth: int) -> None:
    z2m = Zigbee2MqttAdapter(CONFIGURED, Sink(), 65536)
    with pytest.raises(BadInputError) as info:
        z2m.decode(BRIDGE, b"[" * depth + b"]" * depth, 1.0)
    assert info.value.reason is BadInputReason.MALFORMED_JSON


def test_devices_learned_before_the_list_are_bounded() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter(CONFIGURED, sink, 65536, max_devices=3)
    for n in range(5):
        z2m.decode(f"zigbee2mqtt/stray {n}", b'{"water_leak": false}', 1.0)
    z2m.decode("zigbee2mqtt/Kitchen Leak", b'{"water_leak": true}', 2.0)  # configured: always
    z2m.decode("zigbee2mqtt/stray 0", b'{"water_leak": true}', 3.0)  # learned: still read
    assert [e.device_id for e in sink.events if isinstance(e, DeviceDiscovered)] == [
        "z2m-stray-0",
        "z2m-stray-1",
        "z2m-stray-2",
    ]
    assert _readings(sink)[-2:] == [
        Reading("kitchen-leak", M.WATER_LEAK, True, 2.0),
        Reading("z2m-stray-0", M.WATER_LEAK, True, 3.0),
    ]
    assert sink.refused == [(LIMIT, BadInputReason.TOO_LARGE)] * 2
    assert z2m.controls("z2m-stray-2")
    assert not z2m.controls("z2m-stray-3")


def test_devices_in_the_list_are_bounded() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter(CONFIGURED, sink, 65536, max_devices=2)
    z2m.decode(BRIDGE, _devices("a", "b", "Kitchen Leak", "c", "d"), 1.0)
    assert [e.device_id for e in sink.events if isinstance(e, DeviceDiscovered)] == [
        "z2m-a",
        "z2m-b",
    ]
    assert sink.refused == [(LIMIT, BadInputReason.TOO_LARGE)]  # one per list, not per device
    assert z2m.controls("kitchen-leak")  # configured devices do not count
    with pytest.raises(BadInputError) as info:
        z2m.decode("zigbee2mqtt/c", b'{"water_leak": true}', 2.0)
    assert info.value.reason is BadInputReason.UNKNOWN_DEVICE


def test_the_default_limit_is_home_assistant_s() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter([], sink, 65536)
    z2m.decode(BRIDGE, _devices(*(f"d{n}" for n in range(MAX_DEVICES + 10))), 1.0)
    assert MAX_DEVICES == 2000
    assert len([e for e in sink.events if isinstance(e, DeviceDiscovered)]) == MAX_DEVICES
    assert sink.refused == [(LIMIT, BadInputReason.TOO_LARGE)]


def test_each_list_replaces_what_was_learned() -> None:
    sink = Sink()
    z2m = Zigbee2MqttAdapter(CONFIGURED, sink, 65536, max_devices=2)
    z2m.decode("zigbee2mqtt/stray", b'{"water_leak": false}', 1.0)  # before any list
    z2m.decode(BRIDGE, _devices("a", "b"), 2.0)  # the stray topic is in no list: forgotten
    z2m.decode(BRIDGE, _devices("b", "c"), 3.0)  # `a` was removed from the network
    assert [z2m.controls(f"z2m-{n}") for n in ("stray", "a", "b", "c")] == [
        False,
        False,
        True,
        True,
    ]
    assert z2m.controls("kitchen-leak")
    for gone in ("stray", "a"):
        with pytest.raises(BadInputError) as info:
            z2m.decode(f"zigbee2mqtt/{gone}", b'{"water_leak": true}', 4.0)
        assert info.value.reason is BadInputReason.UNKNOWN_DEVICE
    z2m.decode("zigbee2mqtt/c", b'{"water_leak": true}', 5.0)
    z2m.decode("zigbee2mqtt/Kitchen Leak", b'{"water_leak": true}', 5.0)  # configured: kept
    assert _readings(sink)[-2:] == [
        Reading("z2m-c", M.WATER_LEAK, True, 5.0),
        Reading("kitchen-leak", M.WATER_LEAK, True, 5.0),
    ]
    assert sink.refused == []  # the limit is on what one list holds, not on all lists together
