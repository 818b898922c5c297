"""Applies incident reports to the store, in order, and announces each new revision.

Reports are never dropped: when the disk is full or the database fails, the report waits and is
retried with backoff (the valves were already commanded; this is the record of it).
"""

from __future__ import annotations

import asyncio
import logging

from hub.backoff import Backoff
from hub.bus import Bus, Overflow
from hub.errors import StoreError
from hub.events import IncidentChanged, IncidentReport
from hub.store import DbWorker
from hub.store import incidents as repo

_log = logging.getLogger(__name__)


class IncidentService:
    def __init__(self, *, bus: Bus, db: DbWorker, hub_id: str) -> None:
        self._bus = bus
        self._db = db
        self._hub_id = hub_id
        self._sub = bus.subscribe("incidents", (IncidentReport,), overflow=Overflow.KEEP_ALL)
        self.write_failures = 0
        self.last_error: str | None = None
        #: Set while an incident is waiting for the store to accept it.
        self.stalled = asyncio.Event()

    async def run(self) -> None:
        backoff = Backoff(initial=0.2, cap=30.0)
        async for batch in self._sub.batches():
            for report in batch:
                while True:
                    try:
                        incident = await self._db.run(repo.apply_report, report, self._hub_id)
                    except StoreError as err:
                        self.write_failures += 1
                        self.last_error = f"{type(err).__name__}: {err}"
                        self.stalled.set()
                        delay = backoff.next_delay()
                        level = logging.ERROR if backoff.failures == 1 else logging.DEBUG
                        _log.log(level, "cannot write incident (%s); retrying in %.1fs", err, delay)
                        await asyncio.sleep(delay)
                        continue
                    backoff.reset()
                    self.last_error = None
                    self.stalled.clear()
                    break
                if incident is not None:
                    self._bus.publish(IncidentChanged(incident, incident.updated_at))
