"""Home Assistant MQTT discovery configs → what the hub can read from them. Pure: dict in, spec out.

One discovery config describes one entity (or, in device-based discovery, several). This module
expands the abbreviations (`stat_t`, `val_tpl`, `dev_cla`, `uniq_id`, `avty_t`, `pl_on`, ...) and the
`~` base topic, maps `device_class` to a `Measurement`, picks the factor that brings
`unit_of_measurement` to the measurement's fixed unit, and reads the value template's shape.

Components read: `binary_sensor` and `sensor`. A config without a device class, with a device class
the hub has no measurement for, or of another component (`switch`, `light`, `button`...) is
*ignored*: it returns `None` and the adapter counts it. A config the hub should use but cannot —
unknown unit, unusable template, bad topic — raises `BadInputError`. A state or availability topic
must be one MQTT allows (`topic_check`): a subscription Mosquitto refuses drops the hub's link.

Choices (see `_BINARY`, `_SENSOR`, `_UNITS`):

* `binary_sensor` `moisture` → water_leak; `door`/`garage_door`/`window`/`opening` → contact (on =
  open); `motion`/`occupancy`/`presence` → motion; `battery` → battery_low; `problem` → problem;
  `smoke`, `tamper`, `vibration` as named. `gas` and `carbon_monoxide` are refused (UNSUPPORTED,
  so they show in the bad-input counts) rather than passed off as smoke: the vocabulary has no
  measurement for them yet.
* `sensor` `moisture` is soil moisture in %, not a leak, and is ignored; `pressure` becomes
  `air_pressure` (hPa) in hPa, mbar, Pa, mmHg and inHg and `pressure` (bar) in bar, kPa, cbar, MPa
  and psi — water and heating pressure transducers are set up in the latter units.
* Entities with `entity_category: diagnostic` describe the device itself (chip temperature, supply
  voltage, Wi-Fi signal) and are ignored, except `battery` and `problem`, which a safety hub needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drivers.mqtt.ha_template import Template, parse_template
from drivers.mqtt.payload import utf8_text
from drivers.mqtt.topic_check import check_name
from hub.errors import BadInputError, BadInputReason
from hub.measurements import Measurement

__all__ = [
    "COMPONENTS",
    "AvailabilitySpec",
    "EntitySpec",
    "discovery_id_part",
    "entity_spec",
    "expand",
    "payload_text",
]

COMPONENTS = frozenset({"binary_sensor", "sensor"})
MAX_TOPIC_CHARS = 512
MAX_AVAILABILITY = 8
_ID_PART = re.compile(r"[A-Za-z0-9_-]{1,200}")

#: Home Assistant's abbreviations of the keys read here (its full list is much longer).
_ABBREVIATIONS = {
    "stat_t": "state_topic",
    "val_tpl": "value_template",
    "dev_cla": "device_class",
    "uniq_id": "unique_id",
    "obj_id": "object_id",
    "avty": "availability",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "avty_mode": "availability_mode",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "unit_of_meas": "unit_of_measurement",
    "ent_cat": "entity_category",
    "dev": "device",
    "p": "platform",
    "t": "topic",
    "mdl": "model",
    "ids": "identifiers",
    "cmps": "components",
    "o": "origin",
}

_BINARY: dict[str, Measurement | None] = {
    "moisture": Measurement.WATER_LEAK,
    "problem": Measurement.PROBLEM,
    "door": Measurement.CONTACT,
    "garage_door": Measurement.CONTACT,
    "window": Measurement.CONTACT,
    "opening": Measurement.CONTACT,
    "motion": Measurement.MOTION,
    "occupancy": Measurement.MOTION,
    "presence": Measurement.MOTION,
    "smoke": Measurement.SMOKE,
    "tamper": Measurement.TAMPER,
    "vibration": Measurement.VIBRATION,
    "battery": Measurement.BATTERY_LOW,
    "gas": None,  # refused: no measurement for it yet
    "carbon_monoxide": None,
}

_SENSOR: dict[str, Measurement] = {
    "temperature": Measurement.TEMPERATURE,
    "humidity": Measurement.HUMIDITY,
    "pressure": Measurement.AIR_PRESSURE,  # or PRESSURE, by unit: see _UNITS
    "power": Measurement.POWER,
    "voltage": Measurement.VOLTAGE,
    "current": Measurement.CURRENT,
    "energy": Measurement.ENERGY,
    "battery": Measurement.BATTERY,
    "frequency": Measurement.FREQUENCY,
    "volume_flow_rate": Measurement.FLOW,
}

_KEEP_DIAGNOSTIC = frozenset({Measurement.BATTERY, Measurement.BATTERY_LOW, Measurement.PROBLEM})

_F = 5.0 / 9.0
#: unit → (measurement, factor, offset): our value = theirs * factor + offset.
_UNITS: dict[Measurement, dict[str, tuple[Measurement, float, float]]] = {
    Measurement.TEMPERATURE: {
        u: (Measurement.TEMPERATURE, f, o)
        for units, f, o in (
            (("°C", "℃", "C"), 1.0, 0.0),
            (("°F", "℉", "F"), _F, -32.0 * _F),
            (("K",), 1.0, -273.15),
        )
        for u in units
    },
    Measurement.HUMIDITY: {"%": (Measurement.HUMIDITY, 1.0, 0.0)},
    Measurement.BATTERY: {"%": (Measurement.BATTERY, 1.0, 0.0)},
    Measurement.AIR_PRESSURE: {
        "hPa": (Measurement.AIR_PRESSURE, 1.0, 0.0),
        "mbar": (Measurement.AIR_PRESSURE, 1.0, 0.0),
        "Pa": (Measurement.AIR_PRESSURE, 0.01, 0.0),
        "mmHg": (Measurement.AIR_PRESSURE, 1.333223684, 0.0),
        "inHg": (Measurement.AIR_PRESSURE, 33.86388667, 0.0),
        "bar": (Measurement.PRESSURE, 1.0, 0.0),
        "kPa": (Measurement.PRESSURE, 0.01, 0.0),
        "cbar": (Measurement.PRESSURE, 0.01, 0.0),
        "MPa": (Measurement.PRESSURE, 10.0, 0.0),
        "psi": (Measurement.PRESSURE, 0.0689475729, 0.0),
    },
    Measurement.POWER: {
        "W": (Measurement.POWER, 1.0, 0.0),
        "kW": (Measurement.POWER, 1000.0, 0.0),
        "mW": (Measurement.POWER, 0.001, 0.0),
    },
    Measurement.VOLTAGE: {
        "V": (Measurement.VOLTAGE, 1.0, 0.0),
        "mV": (Measurement.VOLTAGE, 0.001, 0.0),
        "kV": (Measurement.VOLTAGE, 1000.0, 0.0),
    },
    Measurement.CURRENT: {
        "A": (Measurement.CURRENT, 1.0, 0.0),
        "mA": (Measurement.CURRENT, 0.001, 0.0),
    },
    Measurement.ENERGY: {
        "Wh": (Measurement.ENERGY, 0.001, 0.0),
        "kWh": (Measurement.ENERGY, 1.0, 0.0),
        "MWh": (Measurement.ENERGY, 1000.0, 0.0),
    },
    Measurement.FREQUENCY: {
        "Hz": (Measurement.FREQUENCY, 1.0, 0.0),
        "kHz": (Measurement.FREQUENCY, 1000.0, 0.0),
    },
    Measurement.FLOW: {
        "L/min": (Measurement.FLOW, 1.0, 0.0),
        "L/h": (Measurement.FLOW, 1.0 / 60.0, 0.0),
        "m³/h": (Measurement.FLOW, 1000.0 / 60.0, 0.0),
        "mL/s": (Measurement.FLOW, 0.06, 0.0),
        "gal/min": (Measurement.FLOW, 3.785411784, 0.0),
        "ft³/min": (Measurement.FLOW, 28.316846592, 0.0),
    },
}


@dataclass(frozen=True, slots=True)
class AvailabilitySpec:
    topic: str
    online: str
    offline: str
    template: Template | None


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One entity the hub reads: where its state comes from and how it becomes a reading."""

    component: str
    name: str  # its unique_id (or `<node_id>/<object_id>`): what a `[[devices]]` `name` matches
    measurement: Measurement
    state_topic: str
    template: Template | None
    factor: float = 1.0
    offset: float = 0.0
    payload_on: str = "ON"
    payload_off: str = "OFF"
    availability: tuple[AvailabilitySpec, ...] = ()
    availability_mode: str = "latest"
    model: str | None = None


def expand(raw: dict[str, Any]) -> dict[str, Any]:
    """Abbreviated keys spelled out (nested `device` and `availability` entries too)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        full = _ABBREVIATIONS.get(key, key)
        expanded: Any = value
        if full == "device" and isinstance(value, dict):
            expanded = {_ABBREVIATIONS.get(k, k): v for k, v in value.items()}
        elif full == "availability" and isinstance(value, list):
            expanded = [
                {_ABBREVIATIONS.get(k, k): v for k, v in e.items()} if isinstance(e, dict) else e
                for e in value
            ]
        out.setdefault(full, expanded)
    return out


def entity_spec(component: str, fallback_name: str, config: dict[str, Any]) -> EntitySpec | None:
    """What the hub reads from one expanded config; `None` when it is nothing the hub uses."""
    if component not in COMPONENTS:
        return None
    device_class = config.get("device_class")
    if not isinstance(device_class, str):
        return None
    binary = component == "binary_sensor"
    if binary:
        if device_class not in _BINARY:
            return None
        measurement = _BINARY[device_class]
        if measurement is None:
            raise BadInputError(
                BadInputReason.UNSUPPORTED,
                f"binary_sensor device class {device_class!r} has no measurement in the hub yet",
            )
    elif device_class in _SENSOR:
        measurement = _SENSOR[device_class]
    else:
        return None
    category = config.get("entity_category")
    if category in ("diagnostic", "config") and measurement not in _KEEP_DIAGNOSTIC:
        return None
    base = config.get("~")
    base = base if isinstance(base, str) else None
    factor, offset = 1.0, 0.0
    if not binary:
        measurement, factor, offset = _unit(measurement, config.get("unit_of_measurement"))
    unique_id = config.get("unique_id")
    template = config.get("value_template")
    device = config.get("device")
    model = device.get("model") if isinstance(device, dict) else None
    return EntitySpec(
        component=component,
        # Names go to the store and the logs: a lone surrogate in them becomes U+FFFD.
        name=utf8_text(unique_id) if isinstance(unique_id, str) and unique_id else fallback_name,
        measurement=measurement,
        state_topic=_topic(config.get("state_topic"), base, "state_topic"),
        template=None if template is None else parse_template(template),
        factor=factor,
        offset=offset,
        payload_on=_payload(config.get("payload_on", "ON")),
        payload_off=_payload(config.get("payload_off", "OFF")),
        availability=_availability(config, base),
        availability_mode=_mode(config.get("availability_mode", "latest")),
        model=utf8_text(model[:80]) if isinstance(model, str) else None,
    )


def discovery_id_part(part: str) -> bool:
    """Whether a node or object id in a discovery topic is one HA accepts."""
    return _ID_PART.fullmatch(part) is not None


def payload_text(value: object) -> str | None:
    """A state value as Home Assistant's template would render it (Python's `str`)."""
    if isinstance(value, bool | int | float | str):
        return str(value)
    return None


def _unit(measurement: Measurement, unit: object) -> tuple[Measurement, float, float]:
    units = _UNITS[measurement]
    if isinstance(unit, str) and unit.strip() in units:
        return units[unit.strip()]
    raise BadInputError(
        BadInputReason.UNSUPPORTED,
        f"{measurement.value} in unit {unit!r:.20} cannot be used (known: {', '.join(units)})",
    )


def _topic(raw: object, base: str | None, key: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise BadInputError(BadInputReason.WRONG_TYPE, f"{key} must be a topic, got {raw!r:.60}")
    topic = raw
    if base is not None:
        if topic.startswith("~"):
            topic = base + topic[1:]
        elif topic.endswith("~"):
            topic = topic[:-1] + base
    if len(topic) > MAX_TOPIC_CHARS:
        raise BadInputError(BadInputReason.BAD_TOPIC, f"{key} is over {MAX_TOPIC_CHARS} characters")
    check_name(topic, key)  # Mosquitto drops a connection that subscribes what MQTT does not allow
    return topic


def _payload(raw: object) -> str:
    text = payload_text(raw)
    if text is None:
        raise BadInputError(BadInputReason.WRONG_TYPE, f"payload must be a value, got {raw!r:.40}")
    return text


def _mode(raw: object) -> str:
    if raw in ("all", "any", "latest"):
        return str(raw)
    raise BadInputError(BadInputReason.WRONG_TYPE, f"availability_mode {raw!r:.20} is unknown")


def _availability(config: dict[str, Any], base: str | None) -> tuple[AvailabilitySpec, ...]:
    entries: list[dict[str, Any]] = []
    if "availability_topic" in config:
        entries.append(
            {
                "topic": config["availability_topic"],
                "value_template": config.get("availability_template"),
            }
        )
    listed = config.get("availability", [])
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        raise BadInputError(BadInputReason.WRONG_TYPE, "availability must be a list of objects")
    entries.extend(listed)
    if len(entries) > MAX_AVAILABILITY:
        raise BadInputError(
            BadInputReason.TOO_LARGE, f"{len(entries)} availability topics (at most 8 are read)"
        )
    specs = []
    for entry in entries:
        template = entry.get("value_template")
        online = entry.get("payload_available", config.get("payload_available", "online"))
        offline = entry.get("payload_not_available", config.get("payload_not_available", "offline"))
        specs.append(
            AvailabilitySpec(
                _topic(entry.get("topic"), base, "availability topic"),
                _payload(online),
                _payload(offline),
                None if template is None else parse_template(template),
            )
        )
    return tuple(specs)
