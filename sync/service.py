"""`SyncService`: the cloud sync of one hub. Owns the signed client and its four loops (outbox
drainer, updates poll, heartbeat, telemetry rollups) and the link state `status` shows.

It never stops the hub: a secret that cannot be used disables the sync (logged as an error, shown
in status) and the home keeps being protected offline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from hub.bus import Bus
from hub.clock import Clock
from hub.config import Config
from hub.events import IncidentChanged
from hub.store import DbWorker
from sync.client import DispatchClient, SecretError, read_secret
from sync.drainer import Drainer
from sync.heartbeat import Heartbeat
from sync.link import Link, Sleep
from sync.rollups import Rollups
from sync.updates import MAX_WAIT_S, UpdatesPoller

_log = logging.getLogger(__name__)


class SyncService:
    def __init__(
        self,
        *,
        config: Config,
        bus: Bus,
        db: DbWorker,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        timeout_s: float = 15.0,
        poll_wait_s: int = MAX_WAIT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if config.cloud is None:
            raise ValueError("SyncService needs a [cloud] section")
        self._config = config
        self._cloud = config.cloud
        self._bus = bus
        self._db = db
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout_s
        self._poll_wait = poll_wait_s
        self._transport = transport
        self.link = Link(clock)
        self._wake = asyncio.Event()
        # A direct handler: setting an event is as quick as the bus asks, and no queue can fill.
        bus.handle(IncidentChanged, lambda _e: self._wake.set())
        self.drainer: Drainer | None = None
        self.updates: UpdatesPoller | None = None
        self.heartbeat: Heartbeat | None = None
        self.rollups: Rollups | None = None
        self.ready = asyncio.Event()
        self._started = clock.monotonic()  # the heartbeat's uptime counts from here
        #: The counters of earlier runs of the loops (`run` again after an unexpected error).
        self._earlier: dict[str, int] = {}

    def flush(self) -> None:
        """Drain now (SIGUSR1, `homeguard-hub sync flush`)."""
        _log.info("flush requested")
        if self.drainer is not None:
            self.drainer.flush()
        else:
            self._wake.set()

    async def run(self) -> None:
        cloud = self._cloud
        try:
            secret = read_secret(cloud.secret_file)
        except SecretError as err:
            self.link.disabled(err)
            return
        try:
            client = DispatchClient(
                base_url=cloud.url,
                hub_id=self._config.hub.id,
                secret=secret,
                clock=self._clock,
                ca_file=cloud.ca_file,
                timeout_s=self._timeout,
                transport=self._transport,
            )
        except OSError as err:  # a CA file TLS cannot use (ssl.SSLError), or unreadable now
            self.link.disabled(SecretError(f"cannot use the CA file {cloud.ca_file}: {err}"))
            return
        for name, count in self._counters().items():  # the loops of a run that failed
            self._earlier[name] = self._earlier.get(name, 0) + count
        common: dict[str, Any] = {"db": self._db, "clock": self._clock, "sleep": self._sleep}
        self.drainer = Drainer(client=client, link=self.link, wake=self._wake, **common)
        self.updates = UpdatesPoller(
            client=client, link=self.link, bus=self._bus, wait_s=self._poll_wait, **common
        )
        self.heartbeat = Heartbeat(
            client=client,
            link=self.link,
            interval_s=cloud.heartbeat_s,
            started=self._started,
            **common,
        )
        self.rollups = Rollups(
            wake=self._wake,
            budget_rows=cloud.outbox_budget_rows,
            retention_s=self._config.store.readings_retention_days * 86400,
            **common,
        )
        try:
            async with client, asyncio.TaskGroup() as tg:
                tg.create_task(self.drainer.run(), name="sync-drainer")
                tg.create_task(self.updates.run(), name="sync-updates")
                tg.create_task(self.heartbeat.run(), name="sync-heartbeat")
                tg.create_task(self.rollups.run(), name="sync-rollups")
                _log.info("cloud sync to %s started", cloud.url)
                self.ready.set()
        except Exception as err:
            self.link.stopped(err)  # `sync status` must not say online while nothing is sent
            raise

    def _counters(self) -> dict[str, int]:
        """The counters of the loops of the current (or last) run."""
        out: dict[str, int] = {}
        if self.drainer is not None:
            out["requests"] = self.drainer.requests
            out["delivered"] = self.drainer.delivered
            out["dead_lettered"] = self.drainer.dead_lettered
            out["batch_splits"] = self.drainer.splits
        if self.updates is not None:
            out["updates_applied"] = self.updates.applied
            out["updates_skipped"] = self.updates.skipped
        if self.heartbeat is not None:
            out["heartbeats"] = self.heartbeat.sent
        if self.rollups is not None:
            out["telemetry_dropped_since_start"] = self.rollups.dropped
        return out

    def status(self) -> dict[str, Any]:
        """The link and the loops' counters since the hub started (written to the health row
        every few seconds)."""
        out: dict[str, Any] = {"url": self._cloud.url, **self.link.as_dict()}
        for name, count in self._counters().items():
            out[name] = self._earlier.get(name, 0) + count
        return out
