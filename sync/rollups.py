"""Telemetry: hourly min/max/mean/last/count per sensor and measurement, queued in the outbox at a
lower priority than any incident, and the outbox kept within its budget (telemetry dropped oldest
first and counted; incidents never)."""

from __future__ import annotations

import asyncio
import logging

from hub.clock import Clock
from hub.errors import StoreError
from hub.store import DbWorker, outbox
from sync.link import Sleep

_log = logging.getLogger(__name__)

HOUR = outbox.ROLLUP_PERIOD_S
#: Hours rolled up per transaction when catching up (after a long stop).
_CHUNK_HOURS = 24
#: Readings are flushed a little after they arrive: roll an hour up this long after it ends.
_SETTLE_S = 60.0
#: Delivered outbox rows are kept this long (for a look with sqlite3), then forgotten.
DELIVERED_KEPT_S = 86400.0


def hour_floor(ts: float) -> float:
    return float(int(ts // HOUR) * HOUR)


class Rollups:
    def __init__(
        self,
        *,
        db: DbWorker,
        clock: Clock,
        sleep: Sleep,
        wake: asyncio.Event,
        budget_rows: int,
        retention_s: float,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sleep = sleep
        self._wake = wake
        self._budget = budget_rows
        self._retention = retention_s
        self.dropped = 0
        self.queued = 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except StoreError as err:
                _log.warning("cannot roll up telemetry (%s); trying again next hour", err)
            now = self._clock.now()
            await self._sleep(hour_floor(now) + HOUR + _SETTLE_S - now)

    async def tick(self) -> None:
        """Roll up every whole hour not done yet; enforce the budget; forget old deliveries."""
        now = self._clock.now()
        end = hour_floor(now - _SETTLE_S)
        stored = await self._db.run(outbox.get_state, outbox.STATE_ROLLUP_UNTIL)
        if stored is None:
            oldest = await self._db.run(outbox.oldest_reading_at)
            start = end if oldest is None else hour_floor(max(oldest, now - self._retention))
            await self._db.run(outbox.set_state, {outbox.STATE_ROLLUP_UNTIL: start})
        else:
            start = float(stored)
        while start < end:
            stop = min(end, start + _CHUNK_HOURS * HOUR)
            rollups = await self._db.run(outbox.hourly_rollups, start, stop)
            dropped = await self._db.run(
                outbox.enqueue_telemetry, rollups, stop, self._clock.now(), self._budget
            )
            self.queued += len(rollups)
            self._count_dropped(dropped)
            start = stop
        # Incidents may have filled the outbox since: telemetry yields to them.
        self._count_dropped(await self._db.run(outbox.enforce_budget, self._budget))
        await self._db.run(outbox.prune_delivered, now - DELIVERED_KEPT_S)
        self._wake.set()

    def _count_dropped(self, dropped: int) -> None:
        if dropped:
            self.dropped += dropped
            _log.warning(
                "outbox over its budget of %d rows: dropped the %d oldest telemetry rollups",
                self._budget,
                dropped,
            )
