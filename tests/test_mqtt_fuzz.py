"""Random bytes and random JSON into the native and Zigbee2MQTT adapters (property-based, with
hypothesis): only `BadInputError` ever leaves `decode`, and every event that comes out is
well-formed (a checked value of its measurement, finite numbers, a known event type)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.zigbee2mqtt import Zigbee2MqttAdapter
from hub.config import DeviceConfig
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement
from tests.adapter_support import Sink
from tests.fuzz_support import SETTINGS, decode_only_refuses, json_values

DEVICES = [
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
    DeviceConfig(id="main-valve", adapter="zigbee2mqtt", name="Main Valve", role="water_valve"),
    DeviceConfig(id="basement", adapter="native"),
]
TOPICS = [
    "zigbee2mqtt/Kitchen Leak",
    "zigbee2mqtt/Main Valve",
    "zigbee2mqtt/Kitchen Leak/availability",
    "zigbee2mqtt/Unknown Thing",
    "zigbee2mqtt/bridge/state",
    "zigbee2mqtt/bridge/devices",
    "homeguard/sensors/basement/state",
    "homeguard/sensors/basement/availability",
    "homeguard/sensors/nobody/state",
]
_KEYS = st.sampled_from(
    [m.value for m in Measurement]
    + ["state", "battery", "voltage", "contact", "occupancy", "friendly_name", "definition",
       "exposes", "type", "property", "unit", "model", "ieee_address"]
) | st.text(max_size=8)  # fmt: skip
_JSON = json_values(
    _KEYS, ["ON", "OFF", "online", "offline", "open", "closed", "mV", "Coordinator"]
)


def _check(topic: str, payload: bytes) -> None:
    sink = Sink()
    adapters = (NativeAdapter(DEVICES, sink, 4096), Zigbee2MqttAdapter(DEVICES, sink, 4096))
    decode_only_refuses(adapters, sink, topic, payload, (Reading, Availability, DeviceDiscovered))


@SETTINGS
@given(st.sampled_from(TOPICS), st.binary(max_size=300))
def test_random_bytes_only_raise_bad_input(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@SETTINGS
@given(st.sampled_from(TOPICS), _JSON)
def test_random_json_only_raises_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())


@SETTINGS
@given(st.sampled_from(TOPICS), st.dictionaries(_KEYS, _JSON, max_size=6))
def test_random_objects_only_raise_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())
