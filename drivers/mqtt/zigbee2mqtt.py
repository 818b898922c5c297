"""Zigbee2MQTT: device state JSON, availability, the bridge's device list, and `/set` `/get`.

Devices named in the configuration keep their ids; every other device in `bridge/devices` is learned
as `z2m-<friendly-name-slug>`, so a new leak sensor paired in Zigbee2MQTT protects the home without
editing the hub's file. Actuator roles (valve, siren) come only from the configuration: the hub never
guesses which switch shuts off the water.

Until the first `bridge/devices` arrives, a device is learned from its state topic. Each list then
replaces what was learned: a device no longer in it is forgotten (configured ones stay), and said so
(`DeviceForgotten`: liveness stops watching it, its health incident resolves). At most
`max_devices` devices are learned; past that they are refused as TOO_LARGE.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from drivers.mqtt import z2m_topics
from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.payload import (
    finite,
    measurement_value,
    parse_availability,
    parse_json,
    parse_object,
)
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import (
    Availability,
    Command,
    CommandAction,
    DeviceDiscovered,
    DeviceForgotten,
    Reading,
)
from hub.measurements import Measurement, ValveState

log = logging.getLogger(__name__)

BRIDGE_DEVICE_ID = "zigbee2mqtt-bridge"
#: Learned (not configured) devices at most, as Home Assistant discovery's entities.
MAX_DEVICES = 2000
#: The subject every refusal past the limit is counted under (one cause, logged once).
_LIMIT_SUBJECT = "zigbee2mqtt learned devices"

#: Zigbee2MQTT state keys → our measurements. Keys not listed are ignored (Zigbee2MQTT sends many).
_KEYS: dict[str, Measurement] = {
    "water_leak": Measurement.WATER_LEAK,
    "battery": Measurement.BATTERY,
    "battery_low": Measurement.BATTERY_LOW,
    "temperature": Measurement.TEMPERATURE,
    "humidity": Measurement.HUMIDITY,
    "pressure": Measurement.AIR_PRESSURE,
    "linkquality": Measurement.LINKQUALITY,
    "power": Measurement.POWER,
    "voltage": Measurement.VOLTAGE,
    "current": Measurement.CURRENT,
    "energy": Measurement.ENERGY,
    "contact": Measurement.CONTACT,
    "occupancy": Measurement.MOTION,
    "smoke": Measurement.SMOKE,
    "tamper": Measurement.TAMPER,
    "vibration": Measurement.VIBRATION,
    "flow": Measurement.FLOW,
}

_ON_OFF = {"ON": True, "OFF": False}
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")

_SIREN_WARNING = {
    "warning": {"mode": "emergency", "level": "very_high", "strobe": True, "duration": 1800}
}


@dataclass(slots=True)
class _Device:
    id: str
    name: str
    role: str | None
    model: str | None = None
    exposes: tuple[str, ...] = ()
    voltage_in_mv: bool = False


def device_id_for(friendly_name: str) -> str:
    """Our id for a learned device: `z2m-` and a slug of its friendly name."""
    return "z2m-" + (_SLUG.sub("-", friendly_name).strip("-").lower() or "device")[:60]


class Zigbee2MqttAdapter:
    name = "zigbee2mqtt"

    def __init__(
        self,
        devices: list[DeviceConfig],
        sink: Sink,
        max_payload_bytes: int,
        base_topic: str = "zigbee2mqtt",
        *,
        max_devices: int = MAX_DEVICES,
    ) -> None:
        self._base = base_topic.rstrip("/")
        self._prefix = self._base + "/"
        self._sink = sink
        self._max = max_payload_bytes
        self._limit = max_devices
        self._by_name: dict[str, _Device] = {}
        self._by_id: dict[str, _Device] = {}
        for d in devices:
            if d.adapter == self.name:
                self._add(_Device(d.id, d.native_name, d.role))
        self._configured = frozenset(self._by_name)
        self._bridge_list_seen = False

    def _add(self, device: _Device) -> None:
        self._by_name[device.name] = device
        self._by_id[device.id] = device

    def _forget(self, device: _Device) -> None:
        del self._by_name[device.name]
        if self._by_id.get(device.id) is device:
            del self._by_id[device.id]

    def _learned(self) -> int:
        return len(self._by_name) - len(self._configured)

    def _refuse_past_limit(self, detail: str) -> None:
        self._sink.refuse(_LIMIT_SUBJECT, BadInputError(BadInputReason.TOO_LARGE, detail))

    def filters(self) -> tuple[str, ...]:
        return (z2m_topics.z2m_all(self._base),)

    def owns(self, topic: str) -> bool:
        return topic.startswith(self._prefix)

    def controls(self, device_id: str) -> bool:
        return device_id in self._by_id

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        rest = topic[len(self._prefix) :]
        if rest.startswith("bridge/"):
            self._bridge(rest[7:], payload, at)
            return
        name, _, leaf = rest.rpartition("/")
        if leaf in ("set", "get") and name:
            return  # commands, not state
        if leaf == "availability" and name:
            device = self._known(name)
            if device is not None:
                self._sink.emit(Availability(device.id, parse_availability(payload), at))
            return
        device = self._known(rest)
        if device is not None:
            self._state(device, payload, at)

    def _known(self, name: str) -> _Device | None:
        """The device of a friendly name; `None` when it is refused past the limit (counted)."""
        device = self._by_name.get(name)
        if device is not None:
            return device
        if self._bridge_list_seen:
            raise BadInputError(
                BadInputReason.UNKNOWN_DEVICE,
                f"{name!r:.80} is neither configured nor in Zigbee2MQTT's device list",
            )
        # The bridge list has not arrived yet: learn the device now rather than drop its state.
        if self._learned() >= self._limit:
            self._refuse_past_limit(f"already {self._limit} learned: {name!r:.60} not read")
            return None
        device = _Device(device_id_for(name), name, None)
        self._add(device)
        self._announce(device, 0.0)
        return device

    def _state(self, device: _Device, payload: bytes, at: float) -> None:
        data = parse_object(payload, self._max)
        emit = self._sink.emit
        for key, raw in data.items():
            measurement = _KEYS.get(key)
            try:
                if measurement is not None:
                    value = measurement_value(measurement, _scale(device, key, raw, data))
                    emit(Reading(device.id, measurement, value, at))
                elif key == "state":
                    measurement, value = _switch_state(device, raw)
                    emit(Reading(device.id, measurement, value, at))
            except BadInputError as err:
                self._sink.refuse(device.id, err)

    def _bridge(self, leaf: str, payload: bytes, at: float) -> None:
        if leaf == "state":
            self._sink.emit(Availability(BRIDGE_DEVICE_ID, parse_availability(payload), at))
        elif leaf == "devices":
            self._learn(payload, at)

    def _learn(self, payload: bytes, at: float) -> None:
        """Learn the devices in the list, and forget the learned ones it no longer has."""
        entries = parse_json(payload, self._max * 64)  # large by nature; bounded all the same
        if not isinstance(entries, list):
            raise BadInputError(BadInputReason.WRONG_TYPE, "bridge/devices is not a list")
        listed: set[str] = set()  # the learned (not configured) names in this list
        over = 0
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("type") == "Coordinator":
                continue
            name = entry.get("friendly_name")
            if not isinstance(name, str) or not name:
                continue
            if name not in self._configured:
                if name not in listed and len(listed) >= self._limit:
                    over += 1
                    continue
                listed.add(name)
            definition = (
                entry.get("definition") if isinstance(entry.get("definition"), dict) else {}
            )
            assert isinstance(definition, dict)
            exposes = _properties(definition.get("exposes"))
            device = self._by_name.get(name) or _Device(device_id_for(name), name, None)
            model = definition.get("model") if isinstance(definition.get("model"), str) else None
            changed = (device.model, device.exposes) != (model, tuple(sorted(exposes)))
            device.model = model
            device.exposes = tuple(sorted(exposes))
            device.voltage_in_mv = exposes.get("voltage") == "mV"
            if name not in self._by_name:
                self._add(device)
                changed = True
            if changed:
                self._announce(device, at)
        gone = [
            d for n, d in self._by_name.items() if n not in self._configured and n not in listed
        ]
        for device in gone:
            self._forget(device)
            if device.id not in self._by_id:  # not the id of a device learned under a new name
                self._sink.emit(DeviceForgotten(device.id, self.name, at))
        if gone:
            log.info("zigbee2mqtt: %d devices no longer in bridge/devices, forgotten", len(gone))
        self._bridge_list_seen = True
        if over:
            self._refuse_past_limit(f"{over} devices in bridge/devices past {self._limit} not read")

    def _announce(self, device: _Device, at: float) -> None:
        self._sink.emit(
            DeviceDiscovered(device.id, self.name, device.name, device.model, device.exposes, at)
        )

    # -- commands -------------------------------------------------------------------------------

    def encode(self, command: Command) -> list[Outgoing]:
        device = self._by_id[command.device_id]
        set_topic = z2m_topics.z2m_set(self._base, device.name)
        if command.action is CommandAction.CLOSE_VALVE:
            return [Outgoing(set_topic, b'{"state":"OFF"}')]
        if command.action is CommandAction.SIREN_ON:
            body = _SIREN_WARNING if "warning" in device.exposes else {"state": "ON"}
            return [Outgoing(set_topic, json.dumps(body).encode())]
        if command.action is CommandAction.CUT_POWER:
            return [Outgoing(set_topic, b'{"state":"OFF"}')]
        return [Outgoing(z2m_topics.z2m_get(self._base, device.name), b'{"state":""}')]


def _scale(device: _Device, key: str, raw: Any, data: dict[str, Any]) -> Any:
    """Battery devices report `voltage` in mV (their exposes say so); the vocabulary is volts.

    Zigbee2MQTT's `contact` is true when the contact is made (door closed); the vocabulary's
    `contact` is true when open (the active state), so it is inverted here.
    """
    if key == "contact" and isinstance(raw, bool):
        return not raw
    is_number = isinstance(raw, int | float) and not isinstance(raw, bool)
    if (
        key == "voltage"
        and is_number
        and (device.voltage_in_mv or ("battery" in data and raw > 100))
    ):
        return finite(Measurement.VOLTAGE, raw) / 1000.0  # a 400-digit int: OUT_OF_RANGE
    return raw


def _switch_state(device: _Device, raw: object) -> tuple[Measurement, bool | str]:
    if not isinstance(raw, str) or raw.upper() not in _ON_OFF:
        raise BadInputError(BadInputReason.WRONG_TYPE, f"state must be ON or OFF, got {raw!r:.40}")
    on = _ON_OFF[raw.upper()]
    if device.role == "water_valve":
        return Measurement.VALVE, (ValveState.OPEN if on else ValveState.CLOSED).value
    return Measurement.SWITCH, on


def _properties(exposes: object) -> dict[str, str | None]:
    """Every property a device exposes (features flattened), with its unit where given."""
    found: dict[str, str | None] = {}
    stack: list[object] = [exposes]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            prop = item.get("property")
            if isinstance(prop, str):
                unit = item.get("unit")
                found[prop] = unit if isinstance(unit, str) else None
            stack.append(item.get("features"))
    return found
