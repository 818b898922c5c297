"""Writes readings, last values, last-seen and discovered devices to the store, in batches.

Readings are telemetry: the queue is bounded and drops the oldest when the disk cannot keep up
(counted in the bus stats). Old readings are pruned past the retention, every hour of
`Clock.monotonic()` (a wall-clock step must not stop it). A device's last values and last-seen are
the newest written, not the largest stamp: after the wall clock steps back, a wet leak sensor shows
wet. A device its ecosystem forgot (`DeviceForgotten`) leaves the device table.

A failure that is not the store's own (a value SQLite cannot take, a bug) never ends the task, which
would end the hub: it is logged with its traceback and `last_error`, the device row at fault is left
out, and the rest of the batch and every later one are written. A stop during a write finishes it.
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
        self._store_failing = False  # warned that the store fails; quiet until a batch is written

    async def run(self) -> None:
        flushing: asyncio.Task[None] | None = None
        try:
            while True:
                await self._sub.wait()
                # The batching window: up to `flush_interval_s`, less when a burst fills a batch.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._sub.wait(_BATCH)
                # Shielded: a stop that comes while a batch is written must not drop the batch
                # (it is drained already, and a cancelled store job may never run).
                flushing = asyncio.create_task(self.flush())
                await asyncio.shield(flushing)
        except asyncio.CancelledError:
            if flushing is not None:
                await flushing  # the batch being written, if any, is finished
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
            await self._write(devices, readings, list(seen.values()))
        except StoreError as err:
            if not self._store_failing:
                _log.warning("cannot record readings (%s); they are dropped until it recovers", err)
            self._store_failing = True
            self.last_error = f"{type(err).__name__}: {err}"
        except Exception as err:  # noqa: BLE001 - defence in depth, see below
            # Not the store's own error: a value it cannot take, or a bug. Ending the task here
            # would end the hub (and would again at each start while the cause is retained).
            _log.exception(
                "cannot record a batch of %d events; skipped, the recorder goes on", len(events)
            )
            self.last_error = f"{type(err).__name__}: {err}"

    async def _write(
        self,
        devices: dict[str, repo.DeviceRow | None],
        readings: list[Reading],
        seen: list[repo.SeenUpdate],
    ) -> None:
        problem: str | None = None
        found = [d for d in devices.values() if d is not None]
        gone = [i for i, d in devices.items() if d is None]
        if found:
            problem = await self._register(found)
        if gone:
            await self._db.run(repo.forget_discovered, gone)
        await self._db.run(repo.record, readings, seen)
        self.written += len(readings)
        mono = self._clock.monotonic()
        if self._last_prune is None or mono - self._last_prune >= _PRUNE_EVERY_S:
            self._last_prune = mono
            before = self._clock.now() - self._retention
            pruned = 0
            while True:  # in batches: other jobs of the store run in between
                batch = await self._db.run(repo.prune, before, repo.PRUNE_BATCH)
                pruned += batch
                if batch < repo.PRUNE_BATCH:
                    break
            if pruned:
                _log.info("pruned %d readings older than the retention", pruned)
        self._store_failing = False
        self.last_error = problem

    async def _register(self, found: list[repo.DeviceRow]) -> str | None:
        """Write the device rows; one the store cannot take for a reason not its own (a name
        SQLite cannot encode) is logged with its traceback and left out, and the others are
        written. Returns what went wrong, or None. A `StoreError` goes up: the store is down."""
        try:
            await self._db.run(repo.register_devices, found)
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001 - find the row(s) at fault, write the rest
            _log.debug("%d device rows not written (%r); one at a time now", len(found), err)
        else:
            return None
        problem: str | None = None
        for row in found:
            try:
                await self._db.run(repo.register_devices, [row])
            except StoreError:
                raise
            except Exception as err:  # noqa: BLE001
                problem = f"{type(err).__name__}: {err}"
                self.last_error = problem
                _log.exception(
                    "cannot record device %s (%s, name %r); left out, the recorder goes on",
                    row.id,
                    row.adapter,
                    row.name,
                )
        return problem
