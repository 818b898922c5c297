"""Bounded windows of floats: an `array('d')` that keeps its last `size` values.

The per-stream windows (the last readings, the last error ratios, the last block means) were
deques: a deque of a dozen floats takes about 1 kB (a 64-slot block and a float object per
value), the same array about 160 bytes. With five such windows a stream, and 500 streams, that
is about 2 MB of the hub's memory.
"""

from __future__ import annotations

from array import array


def push(values: array[float], x: float, size: int) -> float | None:
    """Append `x` to `values`, keeping the last `size` of them; the value pushed out, if any."""
    dropped = values.pop(0) if len(values) >= size else None
    values.append(x)
    return dropped


def push_sum(values: array[float], x: float, size: int, total: float) -> float:
    """`push` for a window kept with its running sum `total`: the sum after it."""
    dropped = push(values, x, size)
    if dropped is not None:
        total -= dropped
    return total + x
