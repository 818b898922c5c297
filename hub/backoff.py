"""Capped exponential backoff with full jitter, reset on success."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.5, cap: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.failures = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next try: uniform in [initial/2, min(cap, initial·factorⁿ)]."""
        ceiling = min(self.cap, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return random.uniform(min(self.initial / 2, ceiling), ceiling)  # noqa: S311  (jitter)

    def reset(self) -> None:
        self.failures = 0
