"""What an MQTT device adapter is: topics it owns, how it decodes them, how it encodes commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.errors import BadInputError
from hub.events import Command


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class Sink(Protocol):
    """Where an adapter puts what it decoded, and the parts of a payload it refused."""

    def emit(self, event: object) -> None: ...

    def refuse(self, subject: str, err: BadInputError) -> None: ...


class BusSink:
    """The `Sink` every adapter writes into: events to the bus, refusals to the bad-input log."""

    def __init__(self, bus: Bus, bad_input: BadInputLog, source: str = "mqtt") -> None:
        self.emit = bus.publish
        self._bad_input = bad_input
        self._source = source

    def refuse(self, subject: str, err: BadInputError) -> None:
        self._bad_input.report(self._source, subject, err)


class Adapter(Protocol):
    name: str

    def filters(self) -> tuple[str, ...]:
        """MQTT topic filters to subscribe to."""
        ...

    def owns(self, topic: str) -> bool:
        """Whether a received topic is this adapter's to decode."""
        ...

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        """Emit the events in one message; raise `BadInputError` when all of it is refused."""
        ...

    def controls(self, device_id: str) -> bool:
        """Whether commands for this device go through this adapter."""
        ...

    def encode(self, command: Command) -> list[Outgoing]:
        """The messages that carry out a command for a device this adapter controls."""
        ...
