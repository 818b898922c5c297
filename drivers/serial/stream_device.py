"""A device that streams frames over its own port (a DSMR meter, a JSON-lines board).

Bytes go through the protocol's framer, each frame through its decoder; what is refused is
counted on the sink with the device as the subject, and a decoder bug costs one frame, never the
port. A decoded frame marks the device present and its samples become readings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from drivers.mqtt.adapter import Sink
from drivers.serial import Decoded, Presence, Router
from hub.errors import BadInputError, BadInputReason

_log = logging.getLogger(__name__)

Frame = TypeVar("Frame", str, bytes)


class Framer(Protocol[Frame]):
    @property
    def pending(self) -> int: ...

    def feed(self, data: bytes) -> list[Frame | BadInputError]: ...

    def reset(self) -> None: ...


class StreamDevice(Generic[Frame]):
    adapter: ClassVar[str]
    #: Offline after this long without a frame; None: a quiet device is not an absent one.
    silent_after_s: float | None = None

    def __init__(
        self,
        device_id: str,
        name: str,
        sink: Sink,
        framer: Framer[Frame],
        decode: Callable[[Frame], Decoded],
    ) -> None:
        self.device_id = device_id
        self._sink = sink
        self._framer: Framer[Frame] = framer
        self._decode: Callable[[Frame], Decoded] = decode
        self._router = Router(sink, device_id, self.adapter, name, None)
        self._presence = Presence(sink)
        self._subject = f"{self.adapter} {device_id}"

    @property
    def pending(self) -> int:
        return self._framer.pending

    def feed(self, data: bytes, at: float) -> None:
        for item in self._framer.feed(data):
            if isinstance(item, BadInputError):
                self._sink.refuse(self._subject, item)
                continue
            try:
                decoded = self._decode(item)
            except BadInputError as err:
                self._sink.refuse(self._subject, err)
                continue
            except Exception as err:  # noqa: BLE001  (a decoder bug costs one frame, not the port)
                _log.exception("%s decoder failed on a frame from %s", self.adapter, self.device_id)
                self._sink.refuse(
                    self._subject,
                    BadInputError(BadInputReason.BAD_FRAME, f"decoder error: {err!r:.200}"),
                )
                continue
            self._presence.set(self.device_id, True, at)
            self._router.emit(decoded, at)

    def silent(self, at: float) -> None:
        """No frame for `silent_after_s`: the device is offline until the next one."""
        if self._presence.online(self.device_id):
            _log.warning(
                "%s %s has sent nothing for %.0f s",
                self.adapter,
                self.device_id,
                self.silent_after_s or 0,
            )
        self._framer.reset()
        self._presence.set(self.device_id, False, at)

    def lost(self, at: float) -> None:
        self._framer.reset()
        self._presence.set(self.device_id, False, at)
