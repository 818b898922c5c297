"""Property tests: nothing but `BadInputError` leaves the Home Assistant discovery decoders, every
refusal is counted, and no implausible reading gets out."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from drivers.mqtt.ha_template import parse_template
from hub.errors import BadInputError
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import BOOLEAN, RANGES
from tests.adapter_support import Sink

PAYLOADS = Path(__file__).parent / "payloads" / "ha"
FIXTURES = ("ha_docs", "ha_docs_device", "esphome", "tasmota", "zigbee2mqtt")

_TOPICS = st.sampled_from(
    [
        "homeassistant/sensor/x/config",
        "homeassistant/binary_sensor/node/x/config",
        "homeassistant/device/x/config",
        "homeassistant/switch/x/config",
        "homeassistant/sensor/bad id/config",
    ]
)
_KEYS = [
    "stat_t", "state_topic", "val_tpl", "value_template", "dev_cla", "device_class", "uniq_id",
    "unit_of_meas", "unit_of_measurement", "avty_t", "avty", "avty_mode", "pl_on", "pl_off",
    "pl_avail", "pl_not_avail", "~", "dev", "cmps", "p", "t", "ent_cat", "name",
]  # fmt: skip
_VALUES = st.sampled_from(
    [
        "temperature", "moisture", "power", "battery", "gas", "pressure", "°C", "°F", "kW", "%",
        "bar", "psi", "sensor", "binary_sensor", "diagnostic", "all", "any", "~/state", "a/b",
        "x/+", "{{ value_json.a }}", "{{ value|float }}", "{{ value_json.a if b }}", "ON", "",
    ]
)  # fmt: skip
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | _VALUES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=8)
    ),
    max_leaves=24,
)


def _learned() -> tuple[HomeAssistantAdapter, Sink, list[str]]:
    sink, subscribed = Sink(), list[str]()
    ha = HomeAssistantAdapter([], sink, 4096, subscribed.append)
    for name in FIXTURES:
        for topic, payload in json.loads((PAYLOADS / f"{name}.json").read_text())["configs"]:
            ha.decode(topic, payload.encode(), 0.0)
    sink.events.clear()
    return ha, sink, subscribed


def _decode_config(topic: str, payload: bytes) -> None:
    sink, subscribed = Sink(), list[str]()
    ha = HomeAssistantAdapter([], sink, 4096, subscribed.append)
    try:
        ha.decode(topic, payload, 1.0)
    except BadInputError:
        return  # refused whole: the service counts it
    learned = [e for e in sink.events if isinstance(e, DeviceDiscovered)]
    # Not refused: so learned, ignored (counted), refused in part (counted) or a delete.
    assert learned or ha.ignored or sink.refused or not payload
    assert len(learned) == len(ha.entity_ids())
    assert set(subscribed) <= set(ha.filters())


@settings(max_examples=300, deadline=None)
@given(topic=_TOPICS, payload=st.binary(max_size=300))
def test_random_bytes_as_a_discovery_config(topic: str, payload: bytes) -> None:
    _decode_config(topic, payload)


@settings(max_examples=600, deadline=None)
@given(
    topic=_TOPICS,
    config=st.dictionaries(st.sampled_from(_KEYS), _JSON | _VALUES, max_size=10),
    wrap=st.booleans(),
)
def test_random_json_as_a_discovery_config(topic: str, config: dict[str, Any], wrap: bool) -> None:
    if wrap:  # a device-based config holding it as a component
        config = {"dev": {"ids": "x"}, "cmps": {"c1": {"p": "sensor", **config}}}
    _decode_config(topic, json.dumps(config).encode())


def _check_state(ha: HomeAssistantAdapter, sink: Sink, topic: str, payload: bytes) -> None:
    before = len(sink.refused)
    try:
        ha.decode(topic, payload, 5.0)
    except BadInputError:
        assert len(payload) > 4096
        return
    for event in sink.events:
        assert isinstance(event, Reading | Availability)
        if isinstance(event, Reading):
            if event.measurement in BOOLEAN:
                assert isinstance(event.value, bool)
            else:
                assert isinstance(event.value, float)
                assert math.isfinite(event.value)
                low, high = RANGES[event.measurement]
                assert low <= event.value <= high
    assert len(sink.refused) >= before
    sink.events.clear()


_STATE_TOPICS = [
    "homeassistant/binary_sensor/garden/state",
    "homeassistant/sensor/sensorBedroom/state",
    "sensorBedroom/state",
    "garagedoor1/sensor/garage_temperature/state",
    "garagedoor1/status",
    "gen-01/tele/SENSOR",
    "gen-01/tele/LWT",
    "tasmota_18A6B3/stat/Moisture",
    "zigbee2mqtt/Bathroom Leak",
    "zigbee2mqtt/bridge/state",
]
_STATE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False)
    | st.sampled_from(["ON", "OFF", "online", "Online", "nan", "1e999", "21.5", "unknown", ""]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["temperature", "humidity", "water_leak", "battery", "Leak", "state", "DS18S20",
             "Temperature", "contact"]
        ) | st.text(max_size=5),
        children,
        max_size=6,
    ),
    max_leaves=16,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(_STATE_TOPICS), payload=st.binary(max_size=200))
def test_random_bytes_on_learned_state_topics(topic: str, payload: bytes) -> None:
    ha, sink, _ = _learned()
    assert ha.owns(topic)
    _check_state(ha, sink, topic, payload)


@settings(max_examples=600, deadline=None)
@given(topic=st.sampled_from(_STATE_TOPICS), value=_STATE_JSON)
def test_random_json_on_learned_state_topics(topic: str, value: object) -> None:
    ha, sink, _ = _learned()
    _check_state(ha, sink, topic, json.dumps(value).encode())


_TEMPLATE_PARTS = st.sampled_from(
    ["{{", "}}", " ", "value", "value_json", ".", "a", "['", "']", '["', "[", "]", "0", "|",
     "float", "int", "round", "(", ")", "1", "-", "if", "else", "{%", "%}", "'", "__class__"]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(
    text=st.lists(_TEMPLATE_PARTS, max_size=14).map("".join) | st.text(max_size=40),
    data=_STATE_JSON,
)
def test_random_templates_parse_or_are_refused(text: str, data: object) -> None:
    try:
        template = parse_template(text)
    except BadInputError:
        return
    with contextlib.suppress(BadInputError):
        template.extract(json.dumps(data), data)
