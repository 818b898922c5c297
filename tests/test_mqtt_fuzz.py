"""Random bytes and random JSON into the native and Zigbee2MQTT adapters (property-based, with
hypothesis): only `BadInputError` ever leaves `decode`, and every event that comes out is
well-formed (a checked value of its measurement, finite numbers, a known event type)."""

from __future__ import annotations

import contextlib
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.payload import measurement_value
from drivers.mqtt.zigbee2mqtt import Zigbee2MqttAdapter
from hub.config import DeviceConfig
from hub.errors import BadInputError
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement
from tests.adapter_support import Sink

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
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["ON", "OFF", "online", "offline", "open", "closed", "mV", "Coordinator"])
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(topic: str, payload: bytes) -> None:
    sink = Sink()
    adapters = (NativeAdapter(DEVICES, sink, 4096), Zigbee2MqttAdapter(DEVICES, sink, 4096))
    for adapter in adapters:
        if adapter.owns(topic):
            with contextlib.suppress(BadInputError):
                adapter.decode(topic, payload, 1.0)
    for event in sink.events:
        assert isinstance(event, Reading | Availability | DeviceDiscovered)
        if isinstance(event, Reading):
            assert measurement_value(event.measurement, event.value) == event.value
            assert not isinstance(event.value, float) or math.isfinite(event.value)


@_SETTINGS
@given(st.sampled_from(TOPICS), st.binary(max_size=300))
def test_random_bytes_only_raise_bad_input(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@_SETTINGS
@given(st.sampled_from(TOPICS), _JSON)
def test_random_json_only_raises_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())


@_SETTINGS
@given(st.sampled_from(TOPICS), st.dictionaries(_KEYS, _JSON, max_size=6))
def test_random_objects_only_raise_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())
