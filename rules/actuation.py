"""Commanding an actuator and making sure it did it: confirm by read-back, ask, retry, give up.

Used for every actuator the protocols drive (valves, sirens, and later power cuts), so they all
share one definition of `ok`, `failed` and `timeout`:

- `ok`: the device reported the expected state after the command;
- `failed`: it reported, but never the expected state (e.g. a valve stuck open);
- `timeout`: it never reported anything after the command.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.bus import Bus
from hub.clock import Clock
from hub.events import Command, CommandAction, Reading, Value
from hub.incident import ActionOutcome
from hub.measurements import Measurement


@dataclass(slots=True)
class _Reported:
    seq: int = 0
    values: dict[Measurement, Value] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class StateTracker:
    """What each actuator last reported, with a way to wait for the next report."""

    def __init__(self) -> None:
        self._devices: dict[str, _Reported] = {}

    def update(self, reading: Reading) -> None:
        state = self._devices.setdefault(reading.device_id, _Reported())
        state.seq += 1
        state.values[reading.measurement] = reading.value
        waiters, state.waiters = state.waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def mark(self, device_id: str) -> int:
        """A point in the device's report history; `reported_since(mark)` looks after it."""
        return self._devices.setdefault(device_id, _Reported()).seq

    def reported_since(self, device_id: str, mark: int) -> bool:
        return self._devices.setdefault(device_id, _Reported()).seq > mark

    def value(self, device_id: str, measurement: Measurement) -> Value | None:
        state = self._devices.get(device_id)
        return None if state is None else state.values.get(measurement)

    async def wait_until(
        self, device_id: str, mark: int, measurement: Measurement, expected: Value, timeout: float
    ) -> bool:
        """True once the device reports `expected` after `mark`; False after `timeout` seconds."""
        state = self._devices.setdefault(device_id, _Reported())
        try:
            async with asyncio.timeout(timeout):
                while not (state.seq > mark and state.values.get(measurement) == expected):
                    waiter = asyncio.get_running_loop().create_future()
                    state.waiters.append(waiter)
                    await waiter
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Outcome:
    result: ActionOutcome
    attempts: int
    detail: str | None


class Actuator:
    """Sends commands on the bus and confirms them through the tracker."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        tracker: StateTracker,
        *,
        confirm_timeout_s: float,
        retries: int,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._tracker = tracker
        self._timeout = confirm_timeout_s
        self._retries = retries

    def send(self, device_id: str, action: CommandAction) -> int:
        """Publish a command now; returns the tracker mark to confirm against."""
        mark = self._tracker.mark(device_id)
        self._bus.publish(Command(uuid.uuid4().hex, device_id, action, self._clock.now()))
        return mark

    async def confirm(
        self,
        device_id: str,
        action: CommandAction,
        mark: int,
        expect: tuple[Measurement, Value],
        on_retry: Callable[[int], None] | None = None,
    ) -> Outcome:
        """Confirm a command already sent at `mark`; ask with READ_STATE, then resend, up to
        `retries` more times."""
        measurement, expected = expect
        first_mark = mark
        attempts = 1
        while True:
            if await self._tracker.wait_until(
                device_id, mark, measurement, expected, self._timeout
            ):
                return Outcome(ActionOutcome.OK, attempts, None)
            self.send(device_id, CommandAction.READ_STATE)
            if await self._tracker.wait_until(
                device_id, mark, measurement, expected, self._timeout
            ):
                return Outcome(ActionOutcome.OK, attempts, None)
            if attempts > self._retries:
                break
            attempts += 1
            if on_retry is not None:
                on_retry(attempts)
            mark = self.send(device_id, action)
        if self._tracker.reported_since(device_id, first_mark):
            last = self._tracker.value(device_id, measurement)
            return Outcome(ActionOutcome.FAILED, attempts, f"still reports {measurement}={last}")
        return Outcome(ActionOutcome.TIMEOUT, attempts, "no report from the device")
