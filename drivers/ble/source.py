"""Where adverts come from: the Bluetooth adapter (`drivers.ble.scanner`) or a recording.

A source is an async stream of `Advert`s, with `BridgeState` items when the adapter comes up or
goes away (the service turns those into the bridge's `Availability`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drivers.ble.advert import Advert
from drivers.ble.recording import read_recording

_log = logging.getLogger(__name__)

#: A replay hands the event loop back every this many adverts (a long file must not stall it).
_YIELD_EVERY = 64


@dataclass(frozen=True, slots=True)
class BridgeState:
    """The source's adapter is up (`online`) or gone."""

    online: bool


SourceItem = Advert | BridgeState


class AdvertSource(Protocol):
    #: The adapter the adverts come through (`hci0`), or `replay`: the bridge's name.
    adapter: str

    def items(self) -> AsyncGenerator[SourceItem, None]:
        """The stream; it ends when the source has nothing more (a replay), else never."""
        ...


class ReplaySource:
    """The adverts of a recording file, as fast as the consumer takes them, then the end.

    Bad lines are counted (`bad_lines`) and the first one logged at WARNING; a file that cannot
    be read is logged at ERROR and yields nothing (the hub runs on without BLE).
    """

    def __init__(self, path: Path, *, adapter: str = "replay") -> None:
        self.path = path
        self.adapter = adapter
        self.bad_lines = 0
        self.adverts = 0

    async def items(self) -> AsyncGenerator[SourceItem, None]:
        try:
            recording = await asyncio.to_thread(read_recording, self.path)
        except OSError as err:
            _log.error("cannot read the BLE replay file %s: %s", self.path, err.strerror or err)
            return
        self.bad_lines = len(recording.bad_lines)
        if recording.bad_lines:
            line, first = recording.bad_lines[0]
            _log.warning(
                "BLE replay %s: %d bad lines skipped (the first, line %d: %s)",
                self.path,
                self.bad_lines,
                line,
                first,
            )
        yield BridgeState(True)
        for i, advert in enumerate(recording.adverts, start=1):
            self.adverts = i
            yield advert
            if i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)


__all__ = ["AdvertSource", "BridgeState", "ReplaySource", "SourceItem"]
