"""Tasmota: `tele/<topic>/SENSOR|STATE|LWT`, `stat/<topic>/POWER<n>|RESULT`, `cmnd/<topic>/POWER<n>`.

Only Tasmota's default FullTopic, `%prefix%/%topic%/`, is understood. A device's `name` in the
configuration is its Tasmota `%topic%` (`Topic` command; by default `tasmota_` and the last six hex
digits of its MAC, e.g. `tasmota_A1B2C3`). The `tele` and `stat` prefixes are shared by every Tasmota
device on the broker, so this adapter subscribes per configured topic and owns only those.

Multi-relay devices: `name = "<topic>#<n>"` (n = 1..32) makes the device relay `POWER<n>` of that
Tasmota; a plain `name = "<topic>"` is relay 1 (`POWER`, or `POWER1` on multi-relay firmware). Two
`[[devices]]` may share one Tasmota, e.g. `tasmota_A1B2C3#1` (valve) and `tasmota_A1B2C3#2` (siren).

What is decoded:

* `tele/<topic>/SENSOR`: `ENERGY` (`Power` W, `Voltage` V, `Current` A, `Total` kWh; a list of
  per-channel values is indexed by the relay number, a single value goes to every relay of the
  topic) and every sensor object's `Temperature`, `Humidity` and `Pressure` (air pressure).
  `TempUnit` `F` is converted to °C, `PressureUnit` `mmHg` / `inHg` to hPa. The chip's own `ESP32`
  temperature is not a room temperature and is skipped. When several sensors report a temperature,
  each gives a reading, in payload order.
* `tele/<topic>/STATE`, `stat/<topic>/RESULT`: the `POWER<n>` key of each configured relay.
* `stat/<topic>/POWER<n>`: a bare `ON` / `OFF` (Tasmota's read-back after a command).
* `tele/<topic>/LWT`: a bare `Online` / `Offline`.

A relay is a `valve` reading (`ON` = open) for role `water_valve`, a `switch` reading otherwise.
Other leaves (`INFO1`, `STATUS<n>`, `UPGRADE`...) are ignored; `cmnd/...` is never owned, so our own
commands coming back on the broker are not mistaken for state.

Commands go to `cmnd/<topic>/POWER<n>`: `OFF` closes a valve or cuts power, `ON` sounds a siren, and
an empty payload asks the device for its state (answered on `stat/<topic>/RESULT` and `.../POWER<n>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.payload import finite, number, parse_object
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason, ConfigError
from hub.events import Availability, Command, CommandAction, Reading
from hub.measurements import Measurement, ValveState

TELE = "tele"
STAT = "stat"
CMND = "cmnd"

MAX_RELAY = 32  # Tasmota on ESP32 drives up to 32 relays (POWER1..POWER32)

#: ENERGY keys → measurements (units as Tasmota reports them: W, V, A, kWh).
_ENERGY: dict[str, Measurement] = {
    "Power": Measurement.POWER,
    "Voltage": Measurement.VOLTAGE,
    "Current": Measurement.CURRENT,
    "Total": Measurement.ENERGY,
}

#: Keys of a sensor object (`"AM2301": {...}`, `"BME280": {...}`, `"DS18B20-1": {...}`).
_SENSOR: dict[str, Measurement] = {
    "Temperature": Measurement.TEMPERATURE,
    "Humidity": Measurement.HUMIDITY,
    "Pressure": Measurement.AIR_PRESSURE,
}

#: Top-level SENSOR objects that are not sensors of the home (the ESP32's die temperature).
_NOT_SENSORS = frozenset({"ENERGY", "ESP32"})

_PRESSURE_TO_HPA: dict[str, float] = {"hPa": 1.0, "mmHg": 1.333223684, "inHg": 33.86388667}

_POWER_LEAVES = frozenset({"POWER", *(f"POWER{n}" for n in range(1, MAX_RELAY + 1))})

_ON_OFF = {"ON": True, "OFF": False}
_LWT = {"online": True, "offline": False}


@dataclass(frozen=True, slots=True)
class _Device:
    id: str
    topic: str
    relay: int  # 1-based; POWER (no number) is relay 1
    role: str | None

    @property
    def power_keys(self) -> tuple[str, ...]:
        return ("POWER", "POWER1") if self.relay == 1 else (f"POWER{self.relay}",)

    @property
    def command_topic(self) -> str:
        return f"{CMND}/{self.topic}/" + ("POWER" if self.relay == 1 else f"POWER{self.relay}")


def split_name(name: str) -> tuple[str, int]:
    """`tasmota_A1B2C3#2` → (`tasmota_A1B2C3`, 2); a name without `#` is relay 1."""
    topic, sep, relay = name.rpartition("#")
    if not sep:
        topic, relay = name, "1"
    if not topic or any(c in topic for c in "+#\x00") or topic != topic.strip("/"):
        raise ConfigError(f"tasmota device name {name!r} is not a usable Tasmota topic")
    if not (relay.isascii() and relay.isdigit() and 1 <= int(relay) <= MAX_RELAY):
        raise ConfigError(f"tasmota device name {name!r}: relay must be 1..{MAX_RELAY}")
    return topic, int(relay)


class TasmotaAdapter:
    name = "tasmota"

    def __init__(self, devices: list[DeviceConfig], sink: Sink, max_payload_bytes: int) -> None:
        self._sink = sink
        self._max = max_payload_bytes
        self._by_topic: dict[str, list[_Device]] = {}
        self._by_id: dict[str, _Device] = {}
        for d in devices:
            if d.adapter != self.name:
                continue
            topic, relay = split_name(d.native_name)
            device = _Device(d.id, topic, relay, d.role)
            self._by_topic.setdefault(topic, []).append(device)
            self._by_id[d.id] = device

    def filters(self) -> tuple[str, ...]:
        return tuple(f"{prefix}/{topic}/+" for topic in self._by_topic for prefix in (TELE, STAT))

    def owns(self, topic: str) -> bool:
        return self._split(topic) is not None

    def controls(self, device_id: str) -> bool:
        return device_id in self._by_id

    def _split(self, topic: str) -> tuple[str, list[_Device], str] | None:
        prefix, _, rest = topic.partition("/")
        device_topic, _, leaf = rest.rpartition("/")
        if prefix not in (TELE, STAT) or not leaf:
            return None
        devices = self._by_topic.get(device_topic)
        return None if devices is None else (prefix, devices, leaf)

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        parsed = self._split(topic)
        if parsed is None:
            raise BadInputError(
                BadInputReason.UNKNOWN_DEVICE,
                f"{topic!r:.120} is not a topic of a configured Tasmota device",
            )
        prefix, devices, leaf = parsed
        if len(payload) > self._max:
            raise BadInputError(
                BadInputReason.TOO_LARGE, f"{len(payload)} bytes is over the {self._max}-byte limit"
            )
        if prefix == TELE:
            if leaf == "SENSOR":
                self._sensor(devices, parse_object(payload, self._max), at)
            elif leaf == "STATE":
                self._relays(devices, parse_object(payload, self._max), at)
            elif leaf == "LWT":
                online = _lwt(payload)
                for device in devices:
                    self._sink.emit(Availability(device.id, online, at))
        elif leaf == "RESULT":
            self._relays(devices, parse_object(payload, self._max), at)
        elif leaf in _POWER_LEAVES:
            on = _on_off(payload.decode("utf-8", "replace").strip(), leaf)
            for device in devices:
                if leaf in device.power_keys:
                    self._sink.emit(_relay_reading(device, on, at))

    def _relays(self, devices: list[_Device], data: dict[str, Any], at: float) -> None:
        for device in devices:
            for key in device.power_keys:
                if key in data:
                    try:
                        self._sink.emit(_relay_reading(device, _on_off(data[key], key), at))
                    except BadInputError as err:
                        self._sink.refuse(device.id, err)

    def _sensor(self, devices: list[_Device], data: dict[str, Any], at: float) -> None:
        temp_unit = data.get("TempUnit", "C")
        pressure_unit = data.get("PressureUnit", "hPa")
        energy = data.get("ENERGY")
        for device in devices:
            if isinstance(energy, dict):
                for key, measurement in _ENERGY.items():
                    if key in energy:
                        self._read(device, measurement, energy[key], at, None)
            for name, sensor in data.items():
                if name in _NOT_SENSORS or not isinstance(sensor, dict):
                    continue
                for key, measurement in _SENSOR.items():
                    if key in sensor:
                        unit = temp_unit if key == "Temperature" else pressure_unit
                        self._read(device, measurement, sensor[key], at, unit)

    def _read(
        self, device: _Device, measurement: Measurement, raw: object, at: float, unit: object
    ) -> None:
        try:
            if isinstance(raw, list):  # per-channel ENERGY values: one per relay
                if not 1 <= device.relay <= len(raw):
                    raise BadInputError(
                        BadInputReason.WRONG_TYPE,
                        f"{measurement.value} has {len(raw)} channels, none for relay "
                        f"{device.relay}",
                    )
                raw = raw[device.relay - 1]
            value = _in_unit(measurement, finite(measurement, raw), unit)
            self._sink.emit(Reading(device.id, measurement, number(measurement, value), at))
        except BadInputError as err:
            self._sink.refuse(device.id, err)

    # -- commands -------------------------------------------------------------------------------

    def encode(self, command: Command) -> list[Outgoing]:
        device = self._by_id[command.device_id]
        if command.action is CommandAction.SIREN_ON:
            body = b"ON"
        elif command.action in (CommandAction.CLOSE_VALVE, CommandAction.CUT_POWER):
            body = b"OFF"
        else:  # READ_STATE: an empty POWER command reports the relay without switching it
            body = b""
        return [Outgoing(device.command_topic, body)]


def _relay_reading(device: _Device, on: bool, at: float) -> Reading:
    if device.role == "water_valve":
        state = ValveState.OPEN if on else ValveState.CLOSED
        return Reading(device.id, Measurement.VALVE, state.value, at)
    return Reading(device.id, Measurement.SWITCH, on, at)


def _on_off(raw: object, key: str) -> bool:
    if isinstance(raw, str) and raw.upper() in _ON_OFF:
        return _ON_OFF[raw.upper()]
    raise BadInputError(BadInputReason.WRONG_TYPE, f"{key} must be ON or OFF, got {raw!r:.40}")


def _lwt(payload: bytes) -> bool:
    text = payload[:64].decode("utf-8", "replace").strip()
    online = _LWT.get(text.lower())
    if online is None:
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"LWT must be Online or Offline, got {text!r:.40}"
        )
    return online


def _in_unit(measurement: Measurement, value: float, unit: object) -> float:
    """Temperatures to °C and air pressure to hPa, from the unit the SENSOR message names."""
    if measurement is Measurement.TEMPERATURE:
        if unit == "C":
            return value
        if unit == "F":
            return (value - 32.0) * 5.0 / 9.0
    elif measurement is Measurement.AIR_PRESSURE:
        if isinstance(unit, str) and unit in _PRESSURE_TO_HPA:
            return value * _PRESSURE_TO_HPA[unit]
    else:
        return value
    raise BadInputError(
        BadInputReason.WRONG_TYPE, f"{measurement.value} in unknown unit {unit!r:.20}"
    )
