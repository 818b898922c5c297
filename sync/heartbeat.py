"""The heartbeat: every `cloud.heartbeat_s` while the link is online, what the cloud needs to know
the hub is alive (outbox depth, open incidents, sensors heard from)."""

from __future__ import annotations

import logging

from hub import __version__
from hub.backoff import Backoff
from hub.clock import Clock, rfc3339
from hub.errors import StoreError
from hub.store import DbWorker, outbox
from sync.client import CloudError, DispatchClient
from sync.link import Link, Sleep

_log = logging.getLogger(__name__)

#: A sensor heard from within this window counts as online.
SENSOR_ONLINE_WINDOW_S = 3600.0


class Heartbeat:
    def __init__(
        self,
        *,
        db: DbWorker,
        client: DispatchClient,
        link: Link,
        clock: Clock,
        sleep: Sleep,
        interval_s: float,
        started: float | None = None,
    ) -> None:
        """`started`: the `clock.monotonic()` the reported uptime counts from (default: now)."""
        self._db = db
        self._client = client
        self._link = link
        self._clock = clock
        self._sleep = sleep
        self._interval = interval_s
        self._started = clock.monotonic() if started is None else started
        self.sent = 0

    async def run(self) -> None:
        # Its own backoff only feeds the link's jitter: the period is the heartbeat's retry.
        backoff = Backoff(initial=self._interval, cap=self._interval)
        while True:
            await self._link.online.wait()
            delay = 0.0
            try:
                await self.beat()
            except CloudError as err:
                # Never sooner than the link says (a 429's Retry-After, the wait after refused
                # credentials), nor more often than the period.
                delay = self._link.failed(err, backoff)
            except StoreError as err:
                _log.warning("cannot count what the heartbeat reports (%s)", err)
            await self._sleep(max(self._interval, delay))

    async def beat(self) -> None:
        now = self._clock.now()
        counts = await self._db.run(outbox.heartbeat_counts, now - SENSOR_ONLINE_WINDOW_S)
        await self._client.heartbeat(
            {
                "sent_at": rfc3339(now),
                "version": __version__,
                "uptime_s": round(self._clock.monotonic() - self._started, 1),
                **counts,
            }
        )
        self.sent += 1
        self._link.ok()
