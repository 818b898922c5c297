"""What the adapter tests share: a sink that records what an adapter emitted and refused."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.errors import BadInputError, BadInputReason


@dataclass
class Sink:
    events: list[object] = field(default_factory=list)
    refused: list[tuple[str, BadInputReason]] = field(default_factory=list)

    def emit(self, event: object) -> None:
        self.events.append(event)

    def refuse(self, subject: str, err: BadInputError) -> None:
        self.refused.append((subject, err.reason))
