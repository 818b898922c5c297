"""The outbox drainer: sends what is pending in bounded batches, marks it delivered on the server's
word, and sleeps until the bus says an incident changed (it never polls the database)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from hub.clock import Clock
from hub.errors import StoreError
from hub.store import DbWorker, outbox
from sync.client import (
    MAX_BATCH_ITEMS,
    MAX_BODY_BYTES,
    BadRequest,
    CloudError,
    DispatchClient,
    RateLimited,
    ServerError,
    TooLarge,
)
from sync.link import Link, Sleep, retry_backoff

_log = logging.getLogger(__name__)

#: Room left in a 1 MiB body for the envelope around the items.
_ENVELOPE_BYTES = 64
DELIVERED = frozenset({"accepted", "duplicate", "stale"})
#: A row the server refuses with 400 when sent alone this many times, each after the server took
#: other rows since, is set aside as a dead letter (it would block everything behind it).
LONE_REFUSALS = 3


class _Isolation:
    """Finds the one row behind 400 answers without mistaking a refusing gateway for bad rows.

    A 400 is a failure like a 5xx: the rows stay pending and the drainer backs off. Each retry
    sends half the batch that was refused, so a row the server cannot take ends up alone. A row
    refused alone becomes the suspect: the next try leaves it out, to learn whether the server
    takes anything at all. Only a suspect refused alone `LONE_REFUSALS` times, with the server
    taking other rows in between each time, is given up on; while everything is refused (an
    outage, a gateway), nothing is.
    """

    def __init__(self, max_items: int) -> None:
        self._max_items = max_items
        self.limit = max_items
        self._suspect: int | None = None  # the seq of the row last refused alone
        self._refusals = 0
        self._took_since = False  # the server took other rows since the suspect's last refusal

    def select(self, batch: list[outbox.Item]) -> list[outbox.Item]:
        if self._suspect is not None and not self._took_since:
            batch = [i for i in batch if i.seq != self._suspect] or batch
        return batch[: self.limit]

    def took(self, items: list[outbox.Item]) -> None:
        self.limit = self._max_items
        if any(i.seq == self._suspect for i in items):
            self._suspect = None
        else:
            self._took_since = True

    def refused(self, items: list[outbox.Item]) -> bool:
        """Record a 400 for these rows; True when the row alone is to be given up on."""
        if len(items) > 1:
            self.limit = len(items) // 2
            return False
        seq = items[0].seq
        if seq != self._suspect:
            self._suspect, self._refusals = seq, 1
        elif self._took_since:
            self._refusals += 1
        self._took_since = False
        if self._refusals < LONE_REFUSALS:
            return False
        self._suspect = None
        return True


class Drainer:
    def __init__(
        self,
        *,
        db: DbWorker,
        client: DispatchClient,
        link: Link,
        clock: Clock,
        sleep: Sleep,
        wake: asyncio.Event,
        max_items: int = MAX_BATCH_ITEMS,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._db = db
        self._client = client
        self._link = link
        self._clock = clock
        self._sleep = sleep
        self._wake = wake
        self._flush = asyncio.Event()
        self._max_items = max_items
        self._max_bytes = max_bytes - _ENVELOPE_BYTES
        self._passes_asked = 0
        self._passes_done = 0
        self._idle = asyncio.Condition()
        self._isolation = _Isolation(max_items)
        self.requests = 0
        self.delivered = 0
        self.dead_lettered = 0
        self.splits = 0

    def flush(self) -> None:
        """Drain now: cut short a backoff wait (never a server's Retry-After)."""
        self._flush.set()
        self._wake.set()

    async def drained(self) -> None:
        """Return once a pass that began after this call found nothing left to send."""
        async with self._idle:
            self._passes_asked += 1
            target = self._passes_asked
            self._wake.set()
            await self._idle.wait_for(lambda: self._passes_done >= target)

    async def run(self) -> None:
        backoff = retry_backoff()
        while True:
            self._wake.clear()
            asked = self._passes_asked
            try:
                batch = await self._db.run(outbox.next_batch, self._max_items, self._max_bytes)
                if not batch:
                    async with self._idle:
                        self._passes_done = asked
                        self._idle.notify_all()
                    await self._wake.wait()
                    continue
                await self._send(self._isolation.select(batch))
            except CloudError as err:
                delay = self._link.failed(err, backoff)
                await self._pause(delay, interruptible=not isinstance(err, RateLimited))
                continue
            except StoreError as err:
                delay = backoff.next_delay()
                _log.warning("cannot read or mark the outbox (%s); retrying in %.1f s", err, delay)
                await self._pause(delay, interruptible=True)
                continue
            backoff.reset()
            self._link.ok()

    async def _send(self, items: list[outbox.Item]) -> None:
        self.requests += 1
        try:
            if items[0].kind == outbox.OUTBOX_KIND_TELEMETRY:
                accepted = await self._client.post_telemetry([i.body for i in items])
                if accepted < len(items):
                    _log.warning("the cloud took %d of %d rollups", accepted, len(items))
                self._isolation.took(items)
                await self._settle(items, [])
                return
            results = await self._client.post_incidents([i.body for i in items])
        except TooLarge:
            # Halve until the one item too large for the server stands alone: it becomes a dead
            # letter, the rest goes through.
            if len(items) == 1:
                await self._settle([], [(items[0], "too large for the server (413) even alone")])
                return
            self.splits += 1
            half = len(items) // 2
            await self._send(items[:half])
            await self._send(items[half:])
            return
        except BadRequest as err:
            if not self._isolation.refused(items):
                raise  # a failure: backoff, and the rows stay pending
            reason = f"refused by the server (400) alone {LONE_REFUSALS} times: {err}"
            await self._settle([], [(items[0], reason)])
            return
        self._isolation.took(items)
        delivered: list[outbox.Item] = []
        rejected: list[tuple[outbox.Item, str]] = []
        unknown: list[str] = []
        for item, result in zip(items, results, strict=True):
            if result.id != item.ref_id or result.revision != item.revision:
                unknown.append(
                    f"result for {result.id}/{result.revision} in the place of {item.ref_id}"
                )
            elif result.result in DELIVERED:
                delivered.append(item)
            elif result.result == "rejected":
                rejected.append((item, result.error or "rejected (no reason given)"))
            else:
                unknown.append(f"unknown result {result.result!r}")
        await self._settle(delivered, rejected)
        if unknown:
            raise ServerError("; ".join(unknown[:3]))

    async def _settle(
        self, delivered: list[outbox.Item], rejected: list[tuple[outbox.Item, str]]
    ) -> None:
        await self._db.run(outbox.settle, delivered, rejected, self._clock.now())
        self.delivered += len(delivered)
        self.dead_lettered += len(rejected)
        for item, reason in rejected:
            _log.warning(
                "the cloud rejected %s %s revision %d: %s (kept as a dead letter)",
                item.kind,
                item.ref_id,
                item.revision,
                reason,
            )

    async def _pause(self, delay: float, *, interruptible: bool) -> None:
        if delay <= 0:
            return
        if not interruptible:
            await self._sleep(delay)
            return
        self._flush.clear()
        me = asyncio.current_task()
        name = me.get_name() if me is not None else "drainer"
        sleeper = asyncio.create_task(_await(self._sleep(delay)), name=name)
        flushed = asyncio.create_task(self._flush.wait(), name=f"{name}-flush")
        try:
            await asyncio.wait((sleeper, flushed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, flushed):
                t.cancel()
            await asyncio.gather(sleeper, flushed, return_exceptions=True)
        if not sleeper.cancelled() and (err := sleeper.exception()) is not None:
            raise err


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable
