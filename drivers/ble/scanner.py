"""The Bluetooth adapter as an advert source: bleak's `BleakScanner`, passive where BlueZ can.

Passive scanning (no scan requests: the hub stays silent, and battery sensors are not asked for
scan responses) needs BlueZ's advertisement monitor (BlueZ >= 5.56 with `--experimental`,
Linux >= 5.10) and or-patterns; where it is not available the scanner falls back to active
scanning and says so once. bleak's callback feeds a bounded queue that drops the oldest advert
when full (counted in `dropped`): adverts are telemetry, and a new one supersedes the old.

No adapter, no BlueZ or no D-Bus (a container, a Pi with Bluetooth disabled) is not a crash: it is
logged once at WARNING ("no Bluetooth adapter: BLE sensors are off"), the bridge is reported
offline, and the scanner retries with capped backoff (quietly) until the adapter appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from drivers.ble.advert import KNOWN_UUIDS, Advert, from_bleak
from drivers.ble.source import BridgeState, SourceItem
from hub.backoff import Backoff
from hub.clock import Clock

_log = logging.getLogger(__name__)

NO_ADAPTER = "no Bluetooth adapter: BLE sensors are off"

#: Passive scanning reports only adverts matching one of these: 16-bit service data of the UUIDs
#: the decoder knows (the pattern is the UUID, little-endian, at the start of the AD structure).
OR_PATTERNS = [
    OrPattern(
        0, AdvertisementDataType.SERVICE_DATA_UUID16, int(uuid[4:8], 16).to_bytes(2, "little")
    )
    for uuid in sorted(KNOWN_UUIDS)
]

ScanMode = Literal["passive", "active"]


def bridge_id(adapter: str) -> str:
    """The bridge (an `Availability` subject) that BLE devices reach the hub through."""
    return f"ble:{adapter}"


class BleakSource:
    """Adverts from a local adapter, through BlueZ. `items()` runs until cancelled."""

    def __init__(
        self,
        clock: Clock,
        *,
        adapter: str = "hci0",
        queue_size: int = 1024,
        passive: bool = True,
        retry_initial_s: float = 2.0,
        retry_cap_s: float = 300.0,
    ) -> None:
        self.adapter = adapter
        self.mode: ScanMode | None = None  # how it scans now; None: not scanning
        self.dropped = 0
        self.received = 0
        self._clock = clock
        self._queue: asyncio.Queue[Advert] = asyncio.Queue(maxsize=queue_size)
        self._passive = passive  # False once BlueZ has shown it cannot
        self._retry = Backoff(initial=retry_initial_s, cap=retry_cap_s)

    async def items(self) -> AsyncGenerator[SourceItem, None]:
        online: bool | None = None
        while True:
            try:
                async with self._scanning():
                    self._retry.reset()
                    self._drop_stale()
                    online = True
                    yield BridgeState(True)
                    while True:
                        yield await self._queue.get()
            except (OSError, BleakError) as err:
                if online is not False:
                    _log.warning("%s (adapter %s: %s)", NO_ADAPTER, self.adapter, _why(err))
                    online = False
                    yield BridgeState(False)
                else:
                    _log.debug("still no Bluetooth adapter %s: %s", self.adapter, _why(err))
            await asyncio.sleep(self._retry.next_delay())

    def _drop_stale(self) -> None:
        """Adverts left queued by an earlier scan (a run of the service that ended before it
        took them) are stale: a reading is stamped when it is decoded, so they would come back
        as current."""
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1

    @contextlib.asynccontextmanager
    async def _scanning(self) -> AsyncIterator[None]:
        scanner = await self._start()
        try:
            yield
        finally:
            self.mode = None
            try:
                await scanner.stop()
            except (OSError, BleakError) as err:  # the adapter went away under us
                _log.debug("stopping the BLE scan on %s: %s", self.adapter, _why(err))

    async def _start(self) -> BleakScanner:
        """A started scanner: passive if BlueZ can, else active. Raises OSError/BleakError."""
        if self._passive:
            scanner = BleakScanner(
                self._on_advert,
                scanning_mode="passive",
                bluez=BlueZScannerArgs(adapter=self.adapter, or_patterns=list(OR_PATTERNS)),
            )
            try:
                await scanner.start()
            except BleakError as passive_err:
                active = await self._start_active()  # raises when the adapter is the problem
                self._passive = False
                _log.warning(
                    "passive BLE scanning is not available on %s (%s): scanning actively, "
                    "which sends scan requests to every device in range",
                    self.adapter,
                    _why(passive_err),
                )
                return active
            self.mode = "passive"
            _log.info("BLE: scanning passively on %s", self.adapter)
            return scanner
        return await self._start_active()

    async def _start_active(self) -> BleakScanner:
        scanner = BleakScanner(
            self._on_advert, scanning_mode="active", bluez=BlueZScannerArgs(adapter=self.adapter)
        )
        await scanner.start()
        self.mode = "active"
        _log.info("BLE: scanning actively on %s", self.adapter)
        return scanner

    def _on_advert(self, device: BLEDevice, data: AdvertisementData) -> None:
        """bleak's detection callback (on the event loop): keep what the decoder can use."""
        if KNOWN_UUIDS.isdisjoint(data.service_data):
            return
        self.received += 1
        advert = from_bleak(device, data, self._clock.now())
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(advert)


def _why(err: BaseException) -> str:
    return str(err) or type(err).__name__


__all__ = ["NO_ADAPTER", "OR_PATTERNS", "BleakSource", "bridge_id"]
