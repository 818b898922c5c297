"""Time: one injectable clock, and the RFC 3339 form the wire uses."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """POSIX seconds, wall clock (what incidents and readings are stamped with)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (what timeouts and intervals use)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def rfc3339(ts: float) -> str:
    """RFC 3339 in UTC with `Z` and milliseconds, e.g. `2026-11-26T14:04:30.123Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def duration(seconds: float) -> str:
    """A span for people: `45 s`, `50 min`, `2.5 h`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
