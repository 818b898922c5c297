"""rtl_433: the JSON events `rtl_433 -F mqtt` publishes on `rtl_433/<hostname>/events`.

rtl_433 decodes 433/868/915 MHz sensors with a software radio and publishes one JSON object per
decoded transmission: `model`, `id` (a number, or a string such as `"107A4"`), the device's fields
and radio metadata (`time`, `mic`, `rssi`, `snr`, `noise`, `freq`, `mod`, `protocol`).

A device's `name` in the configuration is `<model>:<id>` exactly as rtl_433 prints them, e.g.
`Govee-Water:6845` or `Fineoffset-WH55:107A4` (the lead will add `model` / `device_id` keys later and
map them to this form). The radio hears the neighbours' sensors too, so an event of a (model, id)
that is not configured is ignored silently: it is not bad input.

What is decoded (everything else, wind, rain, tyre pressure, `code`..., is ignored):

* `temperature_C`, else `temperature_F` converted to °C → temperature.
* `humidity` (%) → humidity; `pressure_hPa` → air pressure.
* `detect_wet` (1/0) → water leak. Govee H5054 (`Govee-Water`) before `detect_wet` existed: `event`
  `"Water Leak"` is wet and `"Button Press"` is dry (the sensor only sends a button press while it
  is dry, which is why newer rtl_433 adds `detect_wet: 0` to it); `"Battery Report"`, `"Heartbeat"`
  and `"Unknown"` say nothing about water. Fine Offset / Ecowitt WH55 (`Fineoffset-WH55`): `alarm`
  (1/0) is its water alarm (`alarm` of other models is not read: it means other things there).
* `battery_ok`: an integer 1/0 is ok/low → battery low (inverted); a fraction (a JSON number with a
  decimal point, e.g. Govee's `0.950`, the WH55's steps of 0.2) is a level → battery (%).
  The older `battery_low` (1 = low) → battery low.

Duplicates: a sensor sends each frame 2-3 times, and more than one decoder may fire on one frame,
so identical events (same fields once the radio metadata above is set aside) of one (model, id)
within `clock_window_s` of the last one turned into readings are one reading. The distance is taken
between the events' own `time` when both parse (rtl_433's default local time, ISO 8601 with `-M
time:utc` / `time:iso`, or POSIX seconds with `-M time:unix`), else between the `at` the hub gave
`decode`. Readings always carry the hub's `at`.

rtl_433 reports no availability, and none of these devices takes commands.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.payload import finite, number, parse_object
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason, ConfigError
from hub.events import Command, Reading, Value
from hub.measurements import Measurement

PREFIX = "rtl_433"
LEAF = "events"

#: Fields that differ between the copies of one transmission (radio metadata, the decoder that
#: fired), set aside when deciding whether two events are the same.
METADATA = frozenset(
    {"time", "mic", "rssi", "snr", "noise", "freq", "freq1", "freq2", "mod", "protocol"}
)

#: Fingerprints remembered per (model, id); the oldest is forgotten first.
_REMEMBERED = 16

_GOVEE_WATER = "Govee-Water"
_GOVEE_EVENTS = {"Water Leak": True, "Button Press": False}
_WH55 = "Fineoffset-WH55"

_UNIX_TIME = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


@dataclass(frozen=True, slots=True)
class _Seen:
    stamp: float
    from_event: bool  # `time` of the event (True) or the hub's `at` (False): never compared


def split_name(name: str) -> tuple[str, str]:
    """`Govee-Water:6845` → (`Govee-Water`, `6845`)."""
    model, sep, device = name.rpartition(":")
    if not sep or not model or not device or name != name.strip():
        raise ConfigError(
            f"rtl_433 device name {name!r} must be <model>:<id>, e.g. Govee-Water:6845"
        )
    return model, device


class Rtl433Adapter:
    name = "rtl_433"

    def __init__(
        self,
        devices: list[DeviceConfig],
        sink: Sink,
        max_payload_bytes: int,
        clock_window_s: float = 2.0,
    ) -> None:
        if not (math.isfinite(clock_window_s) and clock_window_s >= 0):
            raise ConfigError(f"rtl_433 clock_window_s must be >= 0, got {clock_window_s!r}")
        self._sink = sink
        self._max = max_payload_bytes
        self._window = float(clock_window_s)
        self._by_key: dict[tuple[str, str], list[str]] = {}
        self._seen: dict[tuple[str, str], dict[bytes, _Seen]] = {}
        for d in devices:
            if d.adapter != self.name:
                continue
            self._by_key.setdefault(split_name(d.native_name), []).append(d.id)

    def filters(self) -> tuple[str, ...]:
        return (f"{PREFIX}/+/{LEAF}",)

    def owns(self, topic: str) -> bool:
        parts = topic.split("/")
        return len(parts) == 3 and parts[0] == PREFIX and bool(parts[1]) and parts[2] == LEAF

    def controls(self, device_id: str) -> bool:
        return False

    def encode(self, command: Command) -> list[Outgoing]:
        raise KeyError(command.device_id)

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        if not self.owns(topic):
            raise BadInputError(BadInputReason.BAD_TOPIC, f"{topic!r:.120} is not an rtl_433 topic")
        data = parse_object(payload, self._max)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise BadInputError(
                BadInputReason.WRONG_TYPE, f"model must be a non-empty string, got {model!r:.40}"
            )
        raw_id = data.get("id")
        if raw_id is None:
            return  # a model without an id cannot be named in the configuration
        key = (model, _device_id(raw_id))
        device_ids = self._by_key.get(key)
        if device_ids is None:
            return  # a neighbour's sensor
        if self._repeated(key, data, at):
            return
        for device_id in device_ids:
            for measurement, convert, raw in _fields(model, data):
                try:
                    value = convert(measurement, raw)
                except BadInputError as err:
                    self._sink.refuse(device_id, err)
                    continue
                if value is not None:
                    self._sink.emit(Reading(device_id, measurement, value, at))

    def _repeated(self, key: tuple[str, str], data: dict[str, Any], at: float) -> bool:
        """Whether this event repeats one already turned into readings; remembers it if not."""
        content = {k: v for k, v in data.items() if k not in METADATA}
        fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
        event_time = _event_time(data.get("time"))
        now = _Seen(at, False) if event_time is None else _Seen(event_time, True)
        seen = self._seen.setdefault(key, {})
        last = seen.get(fingerprint)
        if (
            last is not None
            and last.from_event == now.from_event
            and abs(now.stamp - last.stamp) <= self._window
        ):
            return True
        seen.pop(fingerprint, None)
        seen[fingerprint] = now
        while len(seen) > _REMEMBERED:
            del seen[next(iter(seen))]
        return False


# -- fields ---------------------------------------------------------------------------------------

_Convert = Callable[[Measurement, object], Value | None]


def _fields(model: str, data: dict[str, Any]) -> list[tuple[Measurement, _Convert, object]]:
    """The fields this event has that we read, in a fixed order, with how to read each."""
    out: list[tuple[Measurement, _Convert, object]] = []
    if "detect_wet" in data:
        out.append((Measurement.WATER_LEAK, _flag, data["detect_wet"]))
    elif model == _GOVEE_WATER and "event" in data:
        out.append((Measurement.WATER_LEAK, _govee_event, data["event"]))
    elif model == _WH55 and "alarm" in data:
        out.append((Measurement.WATER_LEAK, _flag, data["alarm"]))
    if "temperature_C" in data:
        out.append((Measurement.TEMPERATURE, _number, data["temperature_C"]))
    elif "temperature_F" in data:
        out.append((Measurement.TEMPERATURE, _fahrenheit, data["temperature_F"]))
    if "humidity" in data:
        out.append((Measurement.HUMIDITY, _number, data["humidity"]))
    if "pressure_hPa" in data:
        out.append((Measurement.AIR_PRESSURE, _number, data["pressure_hPa"]))
    if "battery_ok" in data:
        raw = data["battery_ok"]
        if isinstance(raw, float):
            out.append((Measurement.BATTERY, _level, raw))
        else:
            out.append((Measurement.BATTERY_LOW, _not_ok, raw))
    elif "battery_low" in data:
        out.append((Measurement.BATTERY_LOW, _flag, data["battery_low"]))
    return out


def _number(measurement: Measurement, raw: object) -> Value:
    return number(measurement, finite(measurement, raw))


def _fahrenheit(measurement: Measurement, raw: object) -> Value:
    return number(measurement, (finite(measurement, raw) - 32.0) * 5.0 / 9.0)


def _flag(measurement: Measurement, raw: object) -> Value:
    """rtl_433's 1/0 flags (`detect_wet`, `alarm`, `battery_low`): 1 is the alarming state."""
    if isinstance(raw, int) and raw in (0, 1):
        return raw == 1
    raise BadInputError(
        BadInputReason.WRONG_TYPE, f"{measurement.value} must be 1 or 0, got {raw!r:.40}"
    )


def _not_ok(measurement: Measurement, raw: object) -> Value:
    return not _flag(measurement, raw)


def _level(measurement: Measurement, raw: object) -> Value:
    """A fractional `battery_ok` (0..1) as a percentage."""
    value = finite(measurement, raw)
    if not 0.0 <= value <= 1.0:
        raise BadInputError(
            BadInputReason.OUT_OF_RANGE, f"battery_ok = {value} is outside its range 0..1"
        )
    return number(measurement, value * 100.0)


def _govee_event(measurement: Measurement, raw: object) -> Value | None:
    """Govee H5054 `event`: wet, dry, or nothing said about water (battery report, heartbeat)."""
    if not isinstance(raw, str):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"Govee event must be a string, got {raw!r:.40}"
        )
    return _GOVEE_EVENTS.get(raw)


def _device_id(raw: object) -> str:
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise BadInputError(
        BadInputReason.WRONG_TYPE, f"id must be an integer or a string, got {raw!r:.40}"
    )


def _event_time(raw: object) -> float | None:
    """An event's `time` as seconds, or None when absent or not understood (the hub's `at` is used).

    Local times without an offset are read as UTC: only differences between them are used.
    """
    try:
        if isinstance(raw, str) and len(raw) <= 40 and not _UNIX_TIME.fullmatch(raw):
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            value = parsed.timestamp()
        elif (
            isinstance(raw, str | int | float) and not isinstance(raw, bool) and len(str(raw)) <= 40
        ):
            value = float(raw)  # POSIX seconds (`-M time:unix`), as a string or a number
        else:
            return None
    except (OverflowError, ValueError, OSError):
        return None
    return value if math.isfinite(value) else None
