"""The native HomeGuard topics: `homeguard/sensors/<id>/state` JSON objects of measurements.

Actuators take `{"valve": "closed"}` / `{"switch": true}` on `.../set` and answer `.../get` by
publishing their state again.
"""

from __future__ import annotations

import json

from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.payload import measurement_value, parse_availability, parse_object
from hub import topics
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, CommandAction, Reading
from hub.measurements import Measurement, ValveState

_BY_NAME = {m.value: m for m in Measurement}

_COMMANDS: dict[CommandAction, tuple[str, dict[str, object]]] = {
    CommandAction.CLOSE_VALVE: ("set", {Measurement.VALVE.value: ValveState.CLOSED.value}),
    CommandAction.SIREN_ON: ("set", {Measurement.SWITCH.value: True}),
    CommandAction.CUT_POWER: ("set", {Measurement.SWITCH.value: False}),
    CommandAction.READ_STATE: ("get", {}),
}


class NativeAdapter:
    name = "native"

    def __init__(self, devices: list[DeviceConfig], sink: Sink, max_payload_bytes: int) -> None:
        self._ids = {d.id for d in devices if d.adapter == self.name}
        self._sink = sink
        self._max = max_payload_bytes

    def filters(self) -> tuple[str, ...]:
        return (topics.NATIVE_FILTER,)

    def owns(self, topic: str) -> bool:
        return topic.startswith(topics.NATIVE_ROOT)

    def controls(self, device_id: str) -> bool:
        return device_id in self._ids

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        parsed = topics.parse_native(topic)
        if parsed is None:
            raise BadInputError(BadInputReason.BAD_TOPIC, f"{topic!r} is not a native sensor topic")
        device_id, leaf = parsed
        if leaf in ("set", "get"):
            return  # commands (ours or another controller's), not device state
        if device_id not in self._ids:
            raise BadInputError(
                BadInputReason.UNKNOWN_DEVICE,
                f"{device_id!r} is not a configured native device (add it under [[devices]])",
            )
        if leaf == "availability":
            self._sink.emit(Availability(device_id, parse_availability(payload), at))
            return
        if leaf != "state":
            raise BadInputError(BadInputReason.BAD_TOPIC, f"unknown leaf {leaf!r} in {topic!r}")
        data = parse_object(payload, self._max)
        emit = self._sink.emit
        for key, raw in data.items():
            measurement = _BY_NAME.get(key)
            if measurement is None:
                self._sink.refuse(
                    device_id,
                    BadInputError(BadInputReason.UNKNOWN_KEY, f"{key!r:.60} is not a measurement"),
                )
                continue
            try:
                value = measurement_value(measurement, raw)
            except BadInputError as err:
                self._sink.refuse(device_id, err)
                continue
            emit(Reading(device_id, measurement, value, at))

    def encode(self, command: Command) -> list[Outgoing]:
        leaf, body = _COMMANDS[command.action]
        topic = (
            topics.native_set(command.device_id)
            if leaf == "set"
            else topics.native_get(command.device_id)
        )
        return [Outgoing(topic, json.dumps(body).encode())]
