"""A live, human view of what the hub sees and does (for `run --simulate` and `run --live`)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hub.bus import Bus, Subscription
from hub.events import CommandSent, IncidentChanged, Reading


class LiveView:
    def __init__(self, bus: Bus, out: TextIO = sys.stdout) -> None:
        self._sub: Subscription[Reading | CommandSent | IncidentChanged] = bus.subscribe(
            "live-view", (Reading, CommandSent, IncidentChanged), maxsize=2000
        )
        self._out = out

    async def run(self) -> None:
        async for batch in self._sub.batches():
            lines: dict[str, list[str]] = {}
            for e in batch:
                if isinstance(e, Reading):
                    lines.setdefault(e.device_id, []).append(f"{e.measurement}={_fmt(e.value)}")
                elif isinstance(e, CommandSent):
                    status = "sent" if e.ok else f"NOT SENT ({e.error})"
                    self._line(f">> command {e.action} to {e.device_id}: {status}")
                else:
                    i = e.incident
                    actions = ", ".join(f"{a.action} {a.target}: {a.result}" for a in i.actions)
                    self._line(
                        f"!! incident {i.id[:8]} rev {i.revision} [{i.severity} {i.emergency_type}] "
                        f"{i.title}" + (f" — {actions}" if actions else "")
                    )
            for device, values in lines.items():
                self._line(f"   {device:<18} {' '.join(values)}")
            self._out.flush()

    def _line(self, text: str) -> None:
        self._out.write(f"{time.strftime('%H:%M:%S')} {text}\n")


def _fmt(value: float | bool | str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else value
