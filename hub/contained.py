"""Services the home's protection does not depend on, run so that no error of theirs ends the hub.

Cloud sync, the anomaly models, the serial and BLE drivers, mDNS and the simulator each handle
the faults they expect. `contained` is for the ones nobody expected: such an error ends that
service's run alone (the task group, and with it the leak path, runs on), is logged with its
traceback, and `status` shows the service as stopped. Then the service starts again after a
capped backoff (about 5 s, doubling up to 10 minutes; short again once a run has lasted 10
minutes), so a driver that met one bad advert at 3 a.m. is back on its own, and its leak sensors
with it. A systemd restart would have met the same cause again, and taken the leak path down
with it. Services that must not run twice (a BLE recording, the simulator) are not restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hub.backoff import Backoff
from hub.errors import describe

_log = logging.getLogger(__name__)

#: Starts one run of a service (a coroutine function, such as a bound `run`).
Start = Callable[[], Coroutine[Any, Any, None]]

FIRST_DELAY_S = 5.0
MAX_DELAY_S = 600.0
#: A run that lasted this long resets the backoff: the next failure waits `FIRST_DELAY_S` again.
SETTLED_S = 600.0


@dataclass
class ServiceFaults:
    """The contained services' unexpected errors since the hub started (for `status`)."""

    #: Services down now: name -> the error that stopped them.
    stopped: dict[str, str] = field(default_factory=dict)
    #: name -> (unexpected errors so far, the last one, whether it is started again).
    failures: dict[str, tuple[int, str, bool]] = field(default_factory=dict)

    def failed(self, name: str, error: BaseException, restarts: bool) -> None:
        text = describe(error)
        self.stopped[name] = text
        count = self.failures.get(name, (0, "", restarts))[0] + 1
        self.failures[name] = (count, text, restarts)

    def started(self, name: str) -> None:
        self.stopped.pop(name, None)

    def as_status(self) -> dict[str, object]:
        return {
            "stopped_services": dict(self.stopped),
            "service_failures": {
                name: {"failures": count, "last_error": error, "restarts": restarts}
                for name, (count, error, restarts) in self.failures.items()
            },
        }


async def contained(
    name: str,
    start: Start,
    faults: ServiceFaults,
    *,
    restart: bool = True,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Run `start()` until it returns or is cancelled; after an unexpected error, log it, note
    it in `faults` and (with `restart`) run it again after a capped backoff."""
    backoff = Backoff(initial=FIRST_DELAY_S, cap=MAX_DELAY_S)
    while True:
        began = monotonic()
        try:
            await start()
            return
        except Exception as err:  # noqa: BLE001 - the point: nothing escapes to the task group
            faults.failed(name, err, restart)
            if not restart:
                _log.exception(
                    "%s stopped on an unexpected error; the hub runs on without it", name
                )
                return
            if monotonic() - began >= SETTLED_S:
                backoff.reset()
            delay = backoff.next_delay()
            _log.exception(
                "%s stopped on an unexpected error; the hub runs on without it and starts it "
                "again in %.0f s",
                name,
                delay,
            )
        await sleep(delay)
        faults.started(name)
        _log.warning("%s: starting again after an unexpected error", name)
