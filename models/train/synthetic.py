"""Synthetic household streams for training and for the cards' metrics (seeded, reproducible).

Each stream has a kind (power, current, voltage, temperature, humidity, flow, pressure), a sampling
interval (10 s to 5 min), a daily rhythm, appliance or HVAC cycles and noise. `inject` adds the
faults the detector should find (spikes, level shifts, drifts, stuck sensors, a leak's constant
flow) and returns where they start, for the cards' detection metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

KINDS = ("power", "current", "voltage", "temperature", "humidity", "flow", "pressure")
FAULTS = ("spike", "level_shift", "drift", "stuck", "leak")

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Stream:
    kind: str
    t: Array
    x: Array
    fault: str | None = None
    fault_at: int | None = None  # index of the first faulty reading


def _daily(t: Array, rng: np.random.Generator) -> Array:
    phase = rng.uniform(0, 2 * np.pi)
    day = 2 * np.pi * t / 86_400.0
    return np.sin(day + phase) + 0.3 * np.sin(2 * day + rng.uniform(0, 2 * np.pi))


def _cycles(t: Array, rng: np.random.Generator, period_s: float, duty: float) -> Array:
    jitter = np.cumsum(rng.normal(0, 0.02, t.size))
    return (((t / period_s) + jitter) % 1.0 < duty).astype(np.float64)


def _events(n: int, rng: np.random.Generator, rate: float, mean_len: int) -> Array:
    on = np.zeros(n)
    i = 0
    while i < n:
        i += int(rng.exponential(1.0 / rate)) + 1
        length = max(1, int(rng.exponential(mean_len)))
        on[i : i + length] = rng.uniform(0.5, 1.5)
        i += length
    return on


def make_stream(kind: str, n: int, rng: np.random.Generator) -> Stream:
    dt = float(rng.choice([10.0, 30.0, 60.0, 300.0]))
    t0 = 1.7e9 + rng.uniform(0, 86_400)
    t = t0 + dt * np.arange(n) + rng.normal(0, 0.05 * dt, n).clip(-0.4 * dt, 0.4 * dt)
    t = np.sort(t)
    daily = _daily(t, rng)
    noise = rng.normal(0, 1, n)
    if kind in ("power", "current"):
        base = rng.uniform(50, 300)
        fridge = _cycles(t, rng, rng.uniform(1200, 3600), rng.uniform(0.3, 0.5)) * rng.uniform(
            80, 150
        )
        appliances = _events(n, rng, 0.01, 30) * rng.uniform(500, 2000)
        x = base * (1 + 0.3 * daily) + fridge + appliances + noise * base * 0.03
        if kind == "current":
            x = x / 230.0
    elif kind == "voltage":
        x = 230 + 3 * daily + noise * rng.uniform(0.3, 1.5)
    elif kind == "temperature":
        hvac = _cycles(t, rng, rng.uniform(1800, 5400), 0.5)
        x = rng.uniform(15, 24) + rng.uniform(0.5, 4) * daily + rng.uniform(0.2, 1.0) * hvac
        x += noise * rng.uniform(0.02, 0.2)
    elif kind == "humidity":
        walk = np.cumsum(rng.normal(0, 0.05, n))
        x = rng.uniform(35, 60) + 5 * daily + walk - walk.mean() + _events(n, rng, 0.003, 40) * 15
        x += noise * 0.5
    elif kind == "flow":
        x = _events(n, rng, 0.02, 10) * rng.uniform(3, 12) + np.abs(noise) * 0.05
    else:  # pressure
        draw = _events(n, rng, 0.02, 10)
        x = rng.uniform(2.5, 4.5) - 0.4 * draw + 0.05 * daily + noise * 0.02
    return Stream(kind, t, x)


def inject(stream: Stream, fault: str, rng: np.random.Generator) -> Stream:
    """A copy of `stream` with one fault starting in its second half."""
    x = stream.x.copy()
    n = x.size
    at = int(rng.integers(n // 2, n - n // 8))
    spread = float(np.std(x[:at])) or 1.0
    if fault == "spike":
        x[at] += rng.choice([-1, 1]) * rng.uniform(6, 12) * spread
    elif fault == "level_shift":
        x[at:] += rng.choice([-1, 1]) * rng.uniform(2, 4) * spread
    elif fault == "drift":
        x[at:] += np.linspace(0, rng.uniform(4, 8) * spread, n - at)
    elif fault == "stuck":
        x[at:] = x[at]
    else:  # leak: a constant flow (or a pressure that no longer recovers) that never stops
        x[at:] += rng.uniform(1.0, 3.0) * spread
    return Stream(stream.kind, stream.t, x, fault, at)


def streams(seed: int, count: int, n: int) -> list[Stream]:
    rng = np.random.default_rng(seed)
    return [make_stream(KINDS[i % len(KINDS)], n, rng) for i in range(count)]
