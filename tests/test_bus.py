"""The bus: typed routing, the overflow policies, batches."""

from __future__ import annotations

import asyncio

from hub.bus import Bus, Overflow
from hub.events import Availability, Reading
from hub.measurements import Measurement


def _reading(i: int) -> Reading:
    return Reading("d", Measurement.TEMPERATURE, float(i), float(i))


def test_routes_by_type_and_filter() -> None:
    bus = Bus()
    leaks = bus.subscribe(
        "leaks", (Reading,), where=lambda r: r.measurement is Measurement.WATER_LEAK
    )
    avail = bus.subscribe("avail", (Availability,))
    bus.publish(_reading(1))
    bus.publish(Reading("d", Measurement.WATER_LEAK, True, 2.0))
    bus.publish(Availability("d", True, 3.0))
    assert [r.value for r in leaks.drain()] == [True]
    assert avail.drain() == [Availability("d", True, 3.0)]


def test_drop_oldest_counts_and_keep_all_keeps() -> None:
    bus = Bus()
    lossy = bus.subscribe("lossy", (Reading,), maxsize=3)
    safe = bus.subscribe("safe", (Reading,), maxsize=3, overflow=Overflow.KEEP_ALL)
    for i in range(5):
        bus.publish(_reading(i))
    assert [r.value for r in lossy.drain()] == [2.0, 3.0, 4.0]
    assert lossy.dropped == 2
    assert len(safe.drain()) == 5
    assert bus.stats() == {"lossy": {"depth": 0, "dropped": 2}, "safe": {"depth": 0, "dropped": 0}}


async def test_batches_wait_then_take_everything() -> None:
    bus = Bus()
    sub = bus.subscribe("s", (Reading,))
    for i in range(3):
        bus.publish(_reading(i))
    batches = sub.batches()
    assert [r.value for r in await anext(batches)] == [0.0, 1.0, 2.0]
    bus.publish(_reading(9))
    assert [r.value for r in await anext(batches)] == [9.0]
    await batches.aclose()


def test_direct_handlers_run_inside_publish_and_a_failing_one_is_contained() -> None:
    bus = Bus()
    seen: list[float] = []

    def broken(_r: Reading) -> None:
        raise RuntimeError("rule bug")

    bus.handle(Reading, broken)
    bus.handle(Reading, lambda r: seen.append(float(r.value)), where=lambda r: r.at > 1)
    queued = bus.subscribe("q", (Reading,))
    bus.publish(_reading(1))
    bus.publish(_reading(2))
    assert seen == [2.0]  # already handled when publish returned
    assert bus.handler_errors == 2
    assert len(queued.drain()) == 2  # queues still get every event


async def test_wait_for_a_batch_size() -> None:
    bus = Bus()
    sub = bus.subscribe("s", (Reading,))
    waiting = asyncio.ensure_future(sub.wait(3))
    bus.publish(_reading(1))
    bus.publish(_reading(2))
    await asyncio.sleep(0)
    assert not waiting.done()
    bus.publish(_reading(3))
    await asyncio.wait_for(waiting, 1)
    assert len(sub) == 3
