"""The hub's own health: written to the store for `homeguard-hub status`, and systemd's watchdog."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from hub import __version__, sdnotify
from hub.clock import Clock
from hub.errors import StoreError
from hub.store import DbWorker, hubstate

_log = logging.getLogger(__name__)

#: How often the daemon refreshes its health row; `status` calls a hub silent after 3 of these.
HEALTH_INTERVAL_S = 5.0


class HealthReporter:
    def __init__(self, *, db: DbWorker, clock: Clock, probe: Callable[[], dict[str, Any]]) -> None:
        self._db = db
        self._clock = clock
        self._probe = probe
        self._started = clock.now()

    async def run(self) -> None:
        """Write the health row and tell systemd's watchdog the hub is alive, every interval.

        The watchdog hears from the event loop, which the leak path runs on: a store busy for
        longer than `WatchdogSec` (the integrity check of a large database at start, a prune of
        weeks of readings) must not get the hub killed, and a restart would not make it quicker.
        A health row still being written is not queued twice.
        """
        interval = min(HEALTH_INTERVAL_S, sdnotify.watchdog_interval() or HEALTH_INTERVAL_S)
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                if writing is None or writing.done():
                    writing = asyncio.create_task(self.write(), name="health-write")
                sdnotify.notify("WATCHDOG=1")
                await asyncio.sleep(interval)  # a period, not a wait for an event
        except asyncio.CancelledError:
            await self.write(stopping=True)  # after any row still being written (one thread)
            if writing is not None:
                await asyncio.wait({writing})
            raise

    async def write(self, *, stopping: bool = False) -> None:
        values = {
            "stopped_at": self._clock.now() if stopping else None,
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self._started,
            "heartbeat_at": self._clock.now(),
            "heartbeat_interval_s": HEALTH_INTERVAL_S,
            **self._probe(),
        }
        try:
            await self._db.run(hubstate.write, values)
        except StoreError as err:
            _log.warning("cannot write health (%s)", err)
