"""Writes readings, last values, last-seen and discovered devices to the store, in batches.

Readings are telemetry: the queue is bounded and drops the oldest when the disk cannot keep up
(counted in the bus stats). Old readings are pruned past the retention, every hour of
`Clock.monotonic()` (a wall-clock step must not stop it). A device's last values and last-seen are
the newest written, not the largest stamp: after the wall clock steps back, a wet leak sensor shows
wet. A device its ecosystem forgot (`DeviceForgotten`) leaves the device table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hub.bus import Bus, Subscription
from hub.clock import Clock
from hub.errors import StoreError
from hub.events import Availability, DeviceDiscovered, DeviceForgotten, Reading
from hub.store import DbWorker
from hub.store import readings as repo

_log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 3600.0
#: Readings that make a batch worth writing before the window ends (a burst must not overflow).
_BATCH = 5000


class Recorder:
    def __init__(
        self,
        *,
        bus: Bus,
        db: DbWorker,
        clock: Clock,
        flush_interval_s: float,
        retention_s: float,
    ) -> None:
        self._db = db
        self._clock = clock
        self._interval = flush_interval_s
        self._retention = retention_s
        self._sub: Subscription[Reading | Availability | DeviceDiscovered | DeviceForgotten] = (
            bus.subscribe(
                "recorder",
                (Reading, Availability, DeviceDiscovered, DeviceForgotten),
                maxsize=100_000,
            )
        )
        self.written = 0
        self.last_error: str | None = None
        self._last_prune: float | None = None  # on `Clock.monotonic()`

    async def run(self) -> None:
        try:
            while True:
                await self._sub.wait()
                # The batching window: up to `flush_interval_s`, less when a burst fills a batch.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._sub.wait(_BATCH)
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()  # what arrived before the stop is kept
            raise

    async def flush(self) -> None:
        events = self._sub.drain()
        if not events:
            return
        readings: list[Reading] = []
        seen: dict[str, repo.SeenUpdate] = {}
        devices: dict[str, repo.DeviceRow | None] = {}  # None: forgotten
        for e in events:
            if isinstance(e, Reading):
                readings.append(e)
                seen[e.device_id] = repo.SeenUpdate(e.device_id, e.at, None)
            elif isinstance(e, Availability):
                prev = seen.get(e.device_id)
                seen[e.device_id] = repo.SeenUpdate(
                    e.device_id, prev.last_seen if prev else None, e.online
                )
            elif isinstance(e, DeviceForgotten):
                devices[e.device_id] = None  # the last word about a device is the one kept
            else:
                devices[e.device_id] = repo.DeviceRow(
                    e.device_id, e.adapter, e.name, None, None, e.model, "discovered"
                )
        try:
            found = [d for d in devices.values() if d is not None]
            gone = [i for i, d in devices.items() if d is None]
            if found:
                await self._db.run(repo.register_devices, found)
            if gone:
                await self._db.run(repo.forget_discovered, gone)
            await self._db.run(repo.record, readings, list(seen.values()))
            self.written += len(readings)
            mono = self._clock.monotonic()
            if self._last_prune is None or mono - self._last_prune >= _PRUNE_EVERY_S:
                self._last_prune = mono
                pruned = await self._db.run(repo.prune, self._clock.now() - self._retention)
                if pruned:
                    _log.info("pruned %d readings older than the retention", pruned)
            self.last_error = None
        except StoreError as err:
            if self.last_error is None:
                _log.warning("cannot record readings (%s); they are dropped until it recovers", err)
            self.last_error = f"{type(err).__name__}: {err}"
