"""Shelly Gen2+ (Plus / Pro) over MQTT: component status, RPC notifications, `Switch.Set` commands.

A configured device's `name` is its MQTT topic prefix (by default the Shelly device id, e.g.
`shellyplus1pm-a8032ab12345`). Every component instance is a channel: `switch:N`, `em:N`, `em1:N`
and `pm1:N` report channel `N`. `name = "<prefix>"` is channel 0; a multi-channel device (Plus 2PM,
Pro 4PM, Pro EM's second clamp) needs one `[[devices]]` entry per further channel, named
`"<prefix>#N"`, e.g. `name = "shellypro4pm-c8f09e8a1b2c#3"` for `switch:3`.

Topics read, under `<prefix>/` (one filter, `<prefix>/#`, per device):

* `online` — the device's `true` / `false` (its MQTT last will): `Availability` for every channel;
* `status/switch:N`, `status/em:N`, `status/em1:N`, `status/pm1:N` — the whole status of one
  component, published when it changes (the device's "generic status update over MQTT" setting);
* `events/rpc` — `NotifyStatus` / `NotifyFullStatus` frames, whose `params` hold partial or full
  statuses keyed by component (`"switch:0": {...}`); `NotifyEvent` (button presses...) is ignored.

`<prefix>/rpc` is where requests to the device go (ours included) and is ignored; other leaves
(`status/sys`, `status/input:0`, `command`...) are ignored too. Malformed payloads and topics are
refused with `BadInputError`, per key where the rest of the payload is still good.

Commands are JSON-RPC requests on `<prefix>/rpc` with `src` set to this hub's name (constructor
argument `src`, default `homeguard-hub`): `Switch.Set` with `on = false` closes a valve relay
(relay off = valve closed) or cuts power, `on = true` sounds a siren; `Switch.GetStatus` reads the
state back. The device answers on `<src>/rpc`; a `Switch.GetStatus` result is decoded like a status
message. After `Switch.Set` the device also publishes `status/switch:N`, the usual confirmation.

Status fields: `output` → `switch` (or `valve` `open`/`closed` for role `water_valve`), `apower` /
`act_power` / `total_act_power` → `power` (W), `voltage` / `a_voltage` → `voltage` (V), `current` /
`total_current` → `current` (A), `aenergy.total` (Wh) → `energy` (kWh), `temperature.tC` →
`temperature` (°C).

Protection errors: a component's `errors` (`overpower`, `overtemp`, `overvoltage`, `undervoltage`,
`overcurrent`...; the relay is switched off while one lasts) become `problem` readings — `True`
while the list is non-empty (each error is also logged at WARNING once while it lasts), `False`
when it is empty or `null` (NotifyStatus sends a key that disappeared as `null`). A status without
`errors` means "no errors" only when it is a whole status: `status/<component>`, `NotifyFullStatus`
and a `Switch.GetStatus` result. A `NotifyStatus` is a delta that carries only what changed — a
power delta `{"apower": 11.5, "current": 0.071}` says nothing about errors — so it gives `problem`
only when it names `errors`. (Whether a status is whole is told by where it came from, not by its
fields: a delta carries `output` or `apower` as often as a whole status does.)
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.payload import measurement_value, parse_availability, parse_object
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, CommandAction, Reading
from hub.measurements import Measurement, ValveState

log = logging.getLogger(__name__)

DEFAULT_SRC = "homeguard-hub"

#: Component types whose status we read, and the field → measurement of each (besides `output`,
#: `aenergy` and `temperature`, handled apart because they are not plain numbers).
_FIELDS: dict[str, dict[str, Measurement]] = {
    "switch": {
        "apower": Measurement.POWER,
        "voltage": Measurement.VOLTAGE,
        "current": Measurement.CURRENT,
    },
    "pm1": {
        "apower": Measurement.POWER,
        "voltage": Measurement.VOLTAGE,
        "current": Measurement.CURRENT,
    },
    "em1": {
        "act_power": Measurement.POWER,
        "voltage": Measurement.VOLTAGE,
        "current": Measurement.CURRENT,
    },
    "em": {  # three-phase meter: the totals, and phase A's voltage
        "total_act_power": Measurement.POWER,
        "a_voltage": Measurement.VOLTAGE,
        "total_current": Measurement.CURRENT,
    },
}

_COMPONENT = re.compile(r"(switch|em|em1|pm1):([0-9]{1,3})")
_CHANNEL_NAME = re.compile(r"(?P<prefix>[^#+]+)(?:#(?P<channel>[0-9]{1,3}))?")
_NOTIFY_STATUS = frozenset({"NotifyStatus", "NotifyFullStatus"})
_MAX_PENDING = 256

#: Commands → (method, the `on` value for `Switch.Set`).
_COMMANDS: dict[CommandAction, tuple[str, bool | None]] = {
    CommandAction.CLOSE_VALVE: ("Switch.Set", False),
    CommandAction.CUT_POWER: ("Switch.Set", False),
    CommandAction.SIREN_ON: ("Switch.Set", True),
    CommandAction.READ_STATE: ("Switch.GetStatus", None),
}


@dataclass(slots=True)
class _Channel:
    id: str
    prefix: str
    channel: int
    role: str | None
    errors: set[str] = field(default_factory=set)


def parse_name(name: str) -> tuple[str, int]:
    """`"prefix"` → (`prefix`, 0); `"prefix#N"` → (`prefix`, N). `ValueError` when neither."""
    match = _CHANNEL_NAME.fullmatch(name)
    if match is None or match["prefix"].endswith("/") or match["prefix"].startswith("/"):
        raise ValueError(
            f"shelly device name {name!r} must be the device's MQTT topic prefix, "
            "optionally followed by #<channel>"
        )
    return match["prefix"], int(match["channel"] or 0)


class ShellyAdapter:
    name = "shelly"

    def __init__(
        self,
        devices: list[DeviceConfig],
        sink: Sink,
        max_payload_bytes: int,
        src: str = DEFAULT_SRC,
    ) -> None:
        if not src or any(c in src for c in "+#/"):
            raise ValueError(f"shelly RPC src {src!r} must be non-empty, without + # or /")
        self._src = src
        self._reply_topic = f"{src}/rpc"
        self._sink = sink
        self._max = max_payload_bytes
        self._by_prefix: dict[str, dict[int, _Channel]] = {}
        self._by_id: dict[str, _Channel] = {}
        for d in devices:
            if d.adapter != self.name:
                continue
            prefix, number = parse_name(d.native_name)
            channel = _Channel(d.id, prefix, number, d.role)
            self._by_prefix.setdefault(prefix, {})[number] = channel
            self._by_id[d.id] = channel
        # Longest prefix first, so `a/b` wins over `a` for `a/b/online`.
        self._prefixes = sorted(self._by_prefix, key=len, reverse=True)
        self._next_id = 0
        self._pending: OrderedDict[int, tuple[_Channel, str]] = OrderedDict()

    def filters(self) -> tuple[str, ...]:
        return (*(f"{p}/#" for p in sorted(self._by_prefix)), self._reply_topic)

    def owns(self, topic: str) -> bool:
        return topic == self._reply_topic or self._prefix_of(topic) is not None

    def controls(self, device_id: str) -> bool:
        return device_id in self._by_id

    def _prefix_of(self, topic: str) -> str | None:
        return next((p for p in self._prefixes if topic.startswith(p + "/")), None)

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        if topic == self._reply_topic:
            self._reply(payload, at)
            return
        prefix = self._prefix_of(topic)
        if prefix is None:
            raise BadInputError(
                BadInputReason.UNKNOWN_DEVICE,
                f"{topic!r:.80} is not under a configured shelly device's prefix",
            )
        channels = self._by_prefix[prefix]
        leaf = topic[len(prefix) + 1 :]
        if leaf == "online":
            online = _online(payload)
            for channel in channels.values():
                self._sink.emit(Availability(channel.id, online, at))
        elif leaf.startswith("status/"):
            component = _component(leaf[7:])
            if component is not None:
                status = parse_object(payload, self._max)
                self._component(channels, component, status, at, full=True)
        elif leaf == "events/rpc":
            self._notification(channels, parse_object(payload, self._max), at)
        # Anything else (`rpc`: requests to the device, ours too; `command`; unknown) is not state.

    def _notification(
        self, channels: dict[int, _Channel], frame: dict[str, Any], at: float
    ) -> None:
        method = frame.get("method")
        if not isinstance(method, str):
            raise BadInputError(
                BadInputReason.WRONG_TYPE, f"events/rpc method must be a string, got {method!r:.40}"
            )
        if method not in _NOTIFY_STATUS:
            return  # NotifyEvent: button presses and the like
        params = frame.get("params")
        if not isinstance(params, dict):
            raise BadInputError(
                BadInputReason.WRONG_TYPE, f"{method} params must be an object, got {params!r:.40}"
            )
        full = method == "NotifyFullStatus"
        for key, status in params.items():
            try:
                component = _component(key)
                if component is None:
                    continue  # ts, sys, wifi, input:0...
                if not isinstance(status, dict):
                    raise BadInputError(BadInputReason.WRONG_TYPE, f"{key!r:.40} is not an object")
            except BadInputError as err:
                self._sink.refuse(next(iter(channels.values())).id, err)
                continue
            self._component(channels, component, status, at, full=full)

    def _component(
        self,
        channels: dict[int, _Channel],
        component: tuple[str, int],
        status: dict[str, Any],
        at: float,
        *,
        full: bool,
    ) -> None:
        kind, number = component
        channel = channels.get(number)
        if channel is None:
            return  # a channel nobody configured (e.g. switch:1 of a 2PM used for one load)
        self._status(channel, kind, status, at, full=full)

    def _status(
        self, channel: _Channel, kind: str, status: dict[str, Any], at: float, *, full: bool
    ) -> None:
        """One component's status; `full` when a missing `errors` key means "no errors"."""
        emit = self._sink.emit
        fields = _FIELDS[kind]

        def reading(measurement: Measurement, raw: object) -> None:
            emit(Reading(channel.id, measurement, measurement_value(measurement, raw), at))

        for key, raw in status.items():
            try:
                measurement = fields.get(key)
                if measurement is not None:
                    reading(measurement, raw)
                elif key == "output" and kind == "switch":
                    reading(*_output(channel, raw))
                elif key == "aenergy" and kind in ("switch", "pm1"):
                    total = _member(key, raw, "total")
                    if total is not None:
                        reading(Measurement.ENERGY, _wh_to_kwh(total))
                elif key == "temperature" and kind == "switch":
                    celsius = _member(key, raw, "tC")
                    if celsius is not None:  # null while the sensor has no valid value
                        reading(Measurement.TEMPERATURE, celsius)
                elif key == "errors":
                    reading(
                        Measurement.PROBLEM, self._errors(channel, f"{kind}:{channel.channel}", raw)
                    )
            except BadInputError as err:
                self._sink.refuse(channel.id, err)
        if full and "errors" not in status:  # Shelly lists `errors` only while there are some
            reading(Measurement.PROBLEM, self._errors(channel, f"{kind}:{channel.channel}", []))

    def _errors(self, channel: _Channel, component: str, raw: object) -> bool:
        """Whether the component reports protection errors now (logging those that are new)."""
        if raw is None:  # a NotifyStatus naming a key that disappeared: the errors are gone
            raw = []
        if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
            raise BadInputError(
                BadInputReason.WRONG_TYPE, f"errors must be a list of strings, got {raw!r:.60}"
            )
        current = {e[:60] for e in raw[:32]}
        for error in sorted(current - channel.errors):
            log.warning(
                "shelly %s (%s %s) reports protection error %r",
                channel.id,
                channel.prefix,
                component,
                error,
            )
        for error in sorted(channel.errors - current):
            log.info("shelly %s %s: error %r cleared", channel.id, component, error)
        channel.errors = current
        return bool(current)

    def _reply(self, payload: bytes, at: float) -> None:
        frame = parse_object(payload, self._max)
        request_id = frame.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            raise BadInputError(
                BadInputReason.WRONG_TYPE,
                f"RPC response id must be an integer, got {request_id!r:.40}",
            )
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return  # not ours, or from before a restart: nothing to match it with
        channel, method = pending
        if "error" in frame:
            log.warning("shelly %s: %s failed: %.200r", channel.id, method, frame.get("error"))
            return
        result = frame.get("result")
        if not isinstance(result, dict):
            raise BadInputError(
                BadInputReason.WRONG_TYPE, f"{method} result must be an object, got {result!r:.40}"
            )
        if method == "Switch.GetStatus":
            self._status(channel, "switch", result, at, full=True)

    # -- commands -------------------------------------------------------------------------------

    def encode(self, command: Command) -> list[Outgoing]:
        channel = self._by_id[command.device_id]
        method, on = _COMMANDS[command.action]
        params: dict[str, object] = {"id": channel.channel}
        if on is not None:
            params["on"] = on
        self._next_id = self._next_id % 2_000_000_000 + 1
        request_id = self._next_id
        self._pending[request_id] = (channel, method)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        body = {"id": request_id, "src": self._src, "method": method, "params": params}
        return [Outgoing(f"{channel.prefix}/rpc", json.dumps(body).encode())]


def _online(payload: bytes) -> bool:
    """Shelly's bare `true` / `false`; `online` / `offline` too, as every other adapter takes."""
    text = payload[:16].strip()
    if text in (b"true", b"false"):
        return text == b"true"
    return parse_availability(payload)


def _component(key: str) -> tuple[str, int] | None:
    """`switch:0` → (`switch`, 0); `None` for a component we do not read (`sys`, `input:0`...)."""
    kind, sep, _ = key.partition(":")
    if kind not in _FIELDS:
        return None
    match = _COMPONENT.fullmatch(key)
    if match is None or not sep:
        raise BadInputError(BadInputReason.BAD_TOPIC, f"bad component key {key!r:.40}")
    return match[1], int(match[2])


def _output(channel: _Channel, raw: object) -> tuple[Measurement, bool | str]:
    if not isinstance(raw, bool):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"output must be true or false, got {raw!r:.40}"
        )
    if channel.role == "water_valve":
        return Measurement.VALVE, (ValveState.OPEN if raw else ValveState.CLOSED).value
    return Measurement.SWITCH, raw


def _member(key: str, raw: object, name: str) -> object:
    if not isinstance(raw, dict):
        raise BadInputError(BadInputReason.WRONG_TYPE, f"{key} must be an object, got {raw!r:.40}")
    return raw.get(name)


def _wh_to_kwh(raw: object) -> object:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return raw  # measurement_value refuses it with the usual message
    try:
        return raw / 1000.0
    except OverflowError:
        raise BadInputError(BadInputReason.OUT_OF_RANGE, "energy is too large") from None
