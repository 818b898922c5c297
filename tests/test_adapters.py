"""Adapters decode captured payloads into readings; bad parts are refused per key, with a reason.

Payload sources: Zigbee2MQTT's documentation of the Aqara SJCGQ11LM water leak sensor and
WSDCGQ11LM climate sensor (published state examples), its `bridge/devices` format, and our own
native topic format (README).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.zigbee2mqtt import BRIDGE_DEVICE_ID, Zigbee2MqttAdapter
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, CommandAction, DeviceDiscovered, Reading
from hub.measurements import Measurement as M

AQARA_LEAK = (
    b'{"battery":100,"battery_low":false,"device_temperature":24,"linkquality":87,'
    b'"power_outage_count":5,"tamper":false,"voltage":3005,"water_leak":true}'
)
AQARA_CLIMATE = (
    b'{"battery":91,"humidity":45.78,"linkquality":101,"power_outage_count":2,'
    b'"pressure":1013.3,"temperature":21.59,"voltage":2985}'
)
BRIDGE_DEVICES = json.dumps(
    [
        {
            "ieee_address": "0x00124b0000000000",
            "friendly_name": "Coordinator",
            "type": "Coordinator",
        },
        {
            "ieee_address": "0x00158d0001a2b3c4",
            "friendly_name": "Laundry/Leak",
            "type": "EndDevice",
            "definition": {
                "model": "SJCGQ11LM",
                "vendor": "Aqara",
                "exposes": [
                    {"type": "binary", "property": "water_leak", "value_on": True},
                    {"type": "numeric", "property": "voltage", "unit": "mV"},
                ],
            },
        },
        {
            "ieee_address": "0x00158d0001a2b3c5",
            "friendly_name": "Hall Siren",
            "type": "Router",
            "definition": {
                "model": "HS2WD-E",
                "exposes": [{"type": "composite", "property": "warning", "features": []}],
            },
        },
    ]
).encode()


@dataclass
class Sink:
    events: list[object] = field(default_factory=list)
    refused: list[BadInputReason] = field(default_factory=list)

    def emit(self, event: object) -> None:
        self.events.append(event)

    def refuse(self, subject: str, err: BadInputError) -> None:
        self.refused.append(err.reason)

    def readings(self) -> dict[tuple[str, M], object]:
        return {
            (e.device_id, e.measurement): e.value for e in self.events if isinstance(e, Reading)
        }


DEVICES = [
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
    DeviceConfig(id="main-valve", adapter="zigbee2mqtt", name="Main Valve", role="water_valve"),
    DeviceConfig(id="hall-siren", adapter="zigbee2mqtt", name="Hall Siren", role="siren"),
    DeviceConfig(id="basement", adapter="native"),
]


def _z2m() -> tuple[Zigbee2MqttAdapter, Sink]:
    sink = Sink()
    return Zigbee2MqttAdapter(DEVICES, sink, 65536), sink


def test_aqara_leak_sensor() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/Kitchen Leak", AQARA_LEAK, 10.0)
    assert sink.readings() == {
        ("kitchen-leak", M.BATTERY): 100.0,
        ("kitchen-leak", M.BATTERY_LOW): False,
        ("kitchen-leak", M.LINKQUALITY): 87.0,
        ("kitchen-leak", M.TAMPER): False,
        ("kitchen-leak", M.VOLTAGE): 3.005,  # mV from a battery device, in volts
        ("kitchen-leak", M.WATER_LEAK): True,
    }
    assert sink.refused == []


def test_climate_sensor_pressure_is_air_pressure() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/Kitchen Leak", AQARA_CLIMATE, 1.0)
    readings = sink.readings()
    assert readings[("kitchen-leak", M.AIR_PRESSURE)] == 1013.3
    assert readings[("kitchen-leak", M.TEMPERATURE)] == 21.59


def test_door_contact_is_inverted_to_open_is_true() -> None:
    """An Aqara MCCGQ11LM as Zigbee2MQTT publishes it: `contact` true means the door is closed."""
    adapter, sink = _z2m()
    closed = b'{"battery":100,"contact":true,"linkquality":120,"voltage":3025}'
    adapter.decode("zigbee2mqtt/Kitchen Leak", closed, 1.0)
    assert sink.readings()[("kitchen-leak", M.CONTACT)] is False
    adapter.decode("zigbee2mqtt/Kitchen Leak", closed.replace(b"true", b"false"), 2.0)
    assert sink.readings()[("kitchen-leak", M.CONTACT)] is True


def test_valve_state_and_commands() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/Main Valve", b'{"state":"OFF","linkquality":120}', 1.0)
    assert sink.readings()[("main-valve", M.VALVE)] == "closed"
    close = adapter.encode(Command("c1", "main-valve", CommandAction.CLOSE_VALVE, 1.0))
    assert [(o.topic, json.loads(o.payload)) for o in close] == [
        ("zigbee2mqtt/Main Valve/set", {"state": "OFF"})
    ]
    read = adapter.encode(Command("c2", "main-valve", CommandAction.READ_STATE, 1.0))
    assert read[0].topic == "zigbee2mqtt/Main Valve/get"
    # Our own commands coming back on the subscription are not device state.
    adapter.decode("zigbee2mqtt/Main Valve/set", b'{"state":"OFF"}', 2.0)
    assert len(sink.events) == 2


def test_availability_both_forms_and_bridge_state() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/Kitchen Leak/availability", b'{"state":"offline"}', 1.0)
    adapter.decode("zigbee2mqtt/Kitchen Leak/availability", b"online", 2.0)
    adapter.decode("zigbee2mqtt/bridge/state", b'{"state":"online"}', 3.0)
    assert sink.events == [
        Availability("kitchen-leak", False, 1.0),
        Availability("kitchen-leak", True, 2.0),
        Availability(BRIDGE_DEVICE_ID, True, 3.0),
    ]


def test_bridge_devices_learns_new_devices_and_siren_warning() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES, 5.0)
    discovered = [e for e in sink.events if isinstance(e, DeviceDiscovered)]
    assert [(d.device_id, d.name, d.model) for d in discovered] == [
        ("z2m-laundry-leak", "Laundry/Leak", "SJCGQ11LM"),
        ("hall-siren", "Hall Siren", "HS2WD-E"),
    ]
    adapter.decode("zigbee2mqtt/Laundry/Leak", b'{"water_leak":true,"voltage":2995}', 6.0)
    assert sink.readings()[("z2m-laundry-leak", M.WATER_LEAK)] is True
    assert sink.readings()[("z2m-laundry-leak", M.VOLTAGE)] == 2.995
    siren = adapter.encode(Command("c", "hall-siren", CommandAction.SIREN_ON, 1.0))
    assert json.loads(siren[0].payload)["warning"]["mode"] == "emergency"
    # The same list again (retained, on every reconnect) announces nothing new.
    before = len(sink.events)
    adapter.decode("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES, 7.0)
    assert len(sink.events) == before
    # Once the list is known, a name outside it is refused.
    with pytest.raises(BadInputError) as info:
        adapter.decode("zigbee2mqtt/Some Group", b'{"state":"ON"}', 8.0)
    assert info.value.reason is BadInputReason.UNKNOWN_DEVICE


def test_wet_reading_before_the_device_list_is_not_dropped() -> None:
    adapter, sink = _z2m()
    adapter.decode("zigbee2mqtt/Garage Leak", b'{"water_leak":true}', 1.0)
    assert sink.readings() == {("z2m-garage-leak", M.WATER_LEAK): True}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"water_leak": tru', BadInputReason.MALFORMED_JSON),
        (b'"wet"', BadInputReason.NOT_AN_OBJECT),
        (b"x" * 70000, BadInputReason.TOO_LARGE),
    ],
)
def test_whole_payload_refusals(payload: bytes, reason: BadInputReason) -> None:
    adapter, _ = _z2m()
    with pytest.raises(BadInputError) as info:
        adapter.decode("zigbee2mqtt/Kitchen Leak", payload, 1.0)
    assert info.value.reason is reason


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_number_json_does_not_allow_is_refused_alone_and_the_leak_kept(constant: bytes) -> None:
    """Python's json.dumps writes NaN for a dead probe: that key goes, the leak stays."""
    adapter, sink = _z2m()
    payload = b'{"water_leak": true, "temperature": ' + constant + b"}"
    adapter.decode("zigbee2mqtt/Kitchen Leak", payload, 1.0)
    assert sink.readings() == {("kitchen-leak", M.WATER_LEAK): True}
    assert sink.refused == [BadInputReason.NOT_FINITE]
    native = Sink()
    NativeAdapter(DEVICES, native, 65536).decode("homeguard/sensors/basement/state", payload, 1.0)
    assert native.readings() == {("basement", M.WATER_LEAK): True}
    assert native.refused == [BadInputReason.NOT_FINITE]


def test_native_refuses_per_key_and_keeps_the_rest() -> None:
    sink = Sink()
    adapter = NativeAdapter(DEVICES, sink, 65536)
    adapter.decode(
        "homeguard/sensors/basement/state",
        b'{"temperature": 19.5, "humidity": 180, "water_leak": "no", "temprature": 1, '
        b'"flow": 2, "valve": "closed"}',
        1.0,
    )
    assert sink.readings() == {
        ("basement", M.TEMPERATURE): 19.5,
        ("basement", M.FLOW): 2.0,
        ("basement", M.VALVE): "closed",
    }
    assert sorted(sink.refused) == sorted(
        [BadInputReason.OUT_OF_RANGE, BadInputReason.WRONG_TYPE, BadInputReason.UNKNOWN_KEY]
    )
    with pytest.raises(BadInputError) as info:
        adapter.decode("homeguard/sensors/garage/state", b'{"temperature": 1}', 1.0)
    assert info.value.reason is BadInputReason.UNKNOWN_DEVICE
    close = adapter.encode(Command("c", "basement", CommandAction.CLOSE_VALVE, 1.0))
    assert (close[0].topic, json.loads(close[0].payload)) == (
        "homeguard/sensors/basement/set",
        {"valve": "closed"},
    )


def test_a_huge_integer_is_refused_not_raised() -> None:
    sink = Sink()
    adapter = NativeAdapter(DEVICES, sink, 65536)
    adapter.decode(
        "homeguard/sensors/basement/state", b'{"temperature": 1' + b"9" * 400 + b"}", 1.0
    )
    assert sink.refused == [BadInputReason.OUT_OF_RANGE]
    assert sink.events == []
