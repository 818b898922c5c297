"""A tracked high quantile of a stream of positive numbers, in log-scale steps.

Each number moves the tracked value by a factor: up by `exp(rate * q)` when the number is above
it, down by `exp(rate * (1 - q))` when not, so at rest a share `q` of the numbers lies below it.
Moving by factors keeps it positive and lets it follow numbers of any size. Used for what a
normal day's excursions reach (`models.sustained`) and for the surprise channel's usual high
short-term means (`models.likelihood`).
"""

from __future__ import annotations

import math


def track_quantile(value: float, x: float, q: float, rate: float) -> float:
    """The tracked `q` quantile `value` after the number `x`, at `rate`."""
    return value * math.exp(rate * q if x > value else -rate * (1.0 - q))
