"""The BLE service: adverts from a source (the adapter, or a replay file) → readings on the sink.

    service = BleService(config.devices, BusSink(bus, bad_input, source="ble"), clock)
    tg.create_task(service.run(), name="ble")                       # the local adapter (hci0)

    service = BleService(devices, sink, clock, source=ReplaySource(Path("adverts.jsonl")))
    service = BleService(devices, sink, clock, record=Path("ble.jsonl"))  # also keep what comes

Readings are stamped with the hub's clock when they are decoded; refusals go to the sink with the
device's id as the subject, so the bad-input log counts them and warns once per cause. A BTHome or
Xiaomi device in range that is not configured is announced once (`DeviceDiscovered`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.ble.advert import Advert
from drivers.ble.decode import Decoder, quiet_libraries
from drivers.ble.recording import RecordingWriter
from drivers.ble.scanner import BleakSource, bridge_id
from drivers.ble.source import AdvertSource, BridgeState
from drivers.mqtt.adapter import Sink
from hub.clock import Clock
from hub.config import DeviceConfig
from hub.events import Availability

_log = logging.getLogger(__name__)


class BleService:
    def __init__(
        self,
        devices: Sequence[DeviceConfig],
        sink: Sink,
        clock: Clock,
        source: AdvertSource | None = None,
        *,
        record: Path | None = None,
    ) -> None:
        """`record`: append every advert taken from the source to this recording (a buffered
        write per advert, on the event loop: for capturing fixtures, not for a hub's life)."""
        self._decoder = Decoder(devices)
        self._record = record
        self._sink = sink
        self._clock = clock
        self._source: AdvertSource = source if source is not None else BleakSource(clock)
        self.bridge = bridge_id(self._source.adapter)
        self.online = False
        self.adverts = 0
        self.readings = 0
        self.refused = 0

    async def run(self) -> None:
        """Decode until cancelled (a replay source: until its file ends).

        An error nobody expected ends the run (the hub starts it again, `hub.contained`): the
        bridge is then reported down, so the devices behind it are known to be unwatched.
        """
        try:
            await self._decode_all()
        except Exception:
            if self.online:
                self.online = False
                self._sink.emit(Availability(self.bridge, False, self._clock.now()))
            raise

    async def _decode_all(self) -> None:
        sink = self._sink
        async with contextlib.AsyncExitStack() as stack:
            stack.enter_context(quiet_libraries())
            tape = self._open_recording(stack)
            items = await stack.enter_async_context(contextlib.aclosing(self._source.items()))
            async for item in items:
                if isinstance(item, BridgeState):
                    self.online = item.online
                    sink.emit(Availability(self.bridge, item.online, self._clock.now()))
                    continue
                self.adverts += 1
                if tape is not None:
                    tape = self._write(tape, item)
                decoded = self._decoder.decode(item, self._clock.now())
                for reading in decoded.readings:
                    sink.emit(reading)
                self.readings += len(decoded.readings)
                for err in decoded.refused:
                    sink.refuse(decoded.device_id or self.bridge, err)
                self.refused += len(decoded.refused)
                if decoded.discovered is not None:
                    _log.info(
                        "BLE: found %s %s (%s) at %s, not configured",
                        decoded.discovered.adapter,
                        decoded.discovered.model,
                        decoded.discovered.name,
                        item.address,
                    )
                    sink.emit(decoded.discovered)

    def _open_recording(self, stack: contextlib.AsyncExitStack) -> RecordingWriter | None:
        if self._record is None:
            return None
        try:
            return stack.enter_context(RecordingWriter(self._record))
        except OSError as err:
            _log.error("cannot record BLE adverts to %s: %s", self._record, err.strerror or err)
            return None

    def _write(self, tape: RecordingWriter, advert: Advert) -> RecordingWriter | None:
        """Record the advert; a failing disk stops the recording, never the service."""
        try:
            tape.write(advert)
        except OSError as err:
            _log.error("BLE recording to %s stopped: %s", self._record, err.strerror or err)
            return None
        return tape

    def status(self) -> dict[str, Any]:
        """For the health probe: the bridge, whether it scans, and the counters."""
        source = self._source
        return {
            "bridge": self.bridge,
            "online": self.online,
            "mode": getattr(source, "mode", "replay"),
            "adverts": self.adverts,
            "readings": self.readings,
            "refused": self.refused,
            "dropped": getattr(source, "dropped", 0),
        }


__all__ = ["BleService"]
