"""The event bus: typed fan-out into one bounded queue per concern.

`publish` never waits and never raises, so a slow consumer can never stall the leak path. Each
subscription states its overflow policy:

- `Overflow.DROP_OLDEST` (readings and other telemetry): past `maxsize` the oldest event is dropped
  and counted in `Subscription.dropped`;
- `Overflow.KEEP_ALL` (commands, incident reports): never dropped. These are rare by nature; a
  backlog past `maxsize` is logged once as a fault of the consumer.

A consumer takes everything waiting in one go (`async for batch in sub.batches()`), which is what
keeps a busy hub from paying one task switch per event.

The leak path cannot afford even one queue hop per stage: a wet reading, the valve command it
causes and the write of that command to the broker's socket happen in one step, as a bare
forwarder would do it. For that, `Bus.handle` registers a *direct handler*: a plain function called
inside `publish`. Direct handlers must be quick and must not block; an exception in one is logged
and counted, never raised into the publisher (a decoder must not fail because a rule did).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

_log = logging.getLogger(__name__)

E = TypeVar("E")


class Overflow(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    KEEP_ALL = "keep_all"


class Subscription(Generic[E]):
    """A bounded queue of the events one consumer asked for."""

    __slots__ = (
        "_items",
        "_waiter",
        "_want",
        "_warned",
        "dropped",
        "maxsize",
        "name",
        "overflow",
        "where",
    )

    def __init__(
        self,
        name: str,
        maxsize: int,
        overflow: Overflow,
        where: Callable[[E], bool] | None,
    ) -> None:
        self.name = name
        self.maxsize = maxsize
        self.overflow = overflow
        self.where = where
        self.dropped = 0
        self._items: deque[E] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._want = 1
        self._warned = False

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, event: E) -> None:
        items = self._items
        if len(items) >= self.maxsize:
            if self.overflow is Overflow.DROP_OLDEST:
                items.popleft()
                self.dropped += 1
            elif not self._warned:
                self._warned = True
                _log.warning(
                    "bus consumer %s is %d events behind; nothing is dropped", self.name, len(items)
                )
        items.append(event)
        waiter = self._waiter
        if waiter is not None and len(items) >= self._want and not waiter.done():
            waiter.set_result(None)

    def drain(self) -> list[E]:
        """Everything waiting now, oldest first (possibly nothing)."""
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self, min_items: int = 1) -> None:
        """Return once at least `min_items` events are waiting."""
        while len(self._items) < min_items:
            self._want = min_items
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._want = 1

    async def batches(self) -> AsyncIterator[list[E]]:
        """Yield everything waiting, each time something arrives."""
        while True:
            await self.wait()
            yield self.drain()


class Bus:
    """Routes each published event to the subscriptions of its exact type."""

    def __init__(self) -> None:
        self._routes: dict[type[Any], list[Subscription[Any]]] = {}
        self._handlers: dict[
            type[Any], list[tuple[Callable[[Any], bool] | None, Callable[[Any], None]]]
        ] = {}
        self._subscriptions: list[Subscription[Any]] = []
        self.handler_errors = 0

    def handle(
        self,
        event_type: type[E],
        handler: Callable[[E], None],
        *,
        where: Callable[[E], bool] | None = None,
    ) -> None:
        """Call `handler(event)` inside `publish` for every event of `event_type` (see above)."""
        self._handlers.setdefault(event_type, []).append((where, handler))

    def subscribe(
        self,
        name: str,
        types: tuple[type[E], ...],
        *,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
        where: Callable[[E], bool] | None = None,
    ) -> Subscription[E]:
        sub: Subscription[E] = Subscription(name, maxsize, overflow, where)
        for t in types:
            self._routes.setdefault(t, []).append(sub)
        self._subscriptions.append(sub)
        return sub

    def publish(self, event: object) -> None:
        for where_h, handler in self._handlers.get(type(event), ()):
            if where_h is None or where_h(event):
                try:
                    handler(event)
                except Exception:  # noqa: BLE001  (see the module docstring)
                    self.handler_errors += 1
                    _log.exception("bus handler %s failed on %r", handler, event)
        for sub in self._routes.get(type(event), ()):
            where = sub.where
            if where is None or where(event):
                sub.offer(event)

    def stats(self) -> dict[str, dict[str, int]]:
        """Depth and drops of every subscription (for `status` and metrics)."""
        return {s.name: {"depth": len(s), "dropped": s.dropped} for s in self._subscriptions}
