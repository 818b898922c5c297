"""Feature code shared by training and the daemon: the one place a stream becomes model inputs.

Everything here is causal and streaming: a reading's features use that reading's timestamp and
the stream's earlier values only, and the state kept per stream is bounded (a fixed window, a
fixed daily profile, a few running moments). Training (`models.train`) runs these same classes
over its synthetic streams, so what the model learned on and what the hub feeds it cannot drift.

Univariate (`UnivariateFeatures`): before a reading `x_i` at `t_i` is taken in, the stream is
normalised by its own running level `m` and spread `s` (exponentially weighted, a few hundred
readings long, so the model sees the shape of a daily cycle but not its absolute level). The
inputs are the last `WINDOW` values, the stream's learned value for this time of day, whether
that profile slot is known yet, and the gap since the previous reading (relative to the stream's
usual interval). The target is `x_i` itself, normalised the same way: the model forecasts the
reading it is about to see, and the residual is what the detector scores.

Multivariate (`SystemFeatures`): a causal rolling mean over the last few rows of each column,
standardised by the calibration stretch's mean and spread (see `models.water`).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from models.bounded import push

#: Past values in a univariate feature row.
WINDOW = 12
#: Slots of the daily profile (half-hourly).
PROFILE_SLOTS = 48
#: Inputs of the univariate model: the window, the profile value and its flag, the gap.
N_UNIVARIATE = WINDOW + 3
#: A normalised value is clipped to +-CLIP (a stuck or flat stream must not produce infinities).
CLIP = 10.0

_DAY_S = 86_400.0
#: Readings over which the level and spread adapt (exponential weighting, cumulative before).
_LEVEL_SPAN = 300.0
#: Profile slots adapt over a few days.
_PROFILE_ALPHA = 0.3
#: The usual interval adapts over some tens of readings.
_GAP_ALPHA = 0.05
#: The largest magnitude of a reading taken in. Beyond it a value is a glitch or a unit gone
#: wrong (the hub's drivers already bound physical values far below it): squared in the running
#: spread, 1e200 or 1.5e308 overflow to infinity and the stream would never score again. A
#: univariate reading beyond it is refused like NaN; in a system's row it is a missing value.
MAX_MAGNITUDE = 1e15
MAX_MAGNITUDE_TEXT = f"{MAX_MAGNITUDE:.0e}".replace("e+", "e")  # "1e15"


class Refusal(StrEnum):
    """Why a reading is not taken in (the value is said by `models score`'s summary)."""

    TIME_UNREADABLE = "with a timestamp that is not a time"
    EARLIER = "earlier than a row before them"
    NO_VALUE = "with no number (empty, unreadable, NaN or infinite)"
    TOO_LARGE = "with a value beyond ±" + MAX_MAGNITUDE_TEXT


def usable(x: float) -> bool:
    """Whether a value is a number the models take in (finite, magnitude <= `MAX_MAGNITUDE`)."""
    return -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE  # False for NaN and infinities too


def refusal(t: float, x: float | None, last_t: float) -> Refusal | None:
    """Why a reading `x` at `t` is refused after one at `last_t` (`None`: it is taken in).

    `x=None` asks about the time only (a system's row, whose bad values are missing values).
    `UnivariateFeatures.accepts` and `SystemFeatures.accepts` are this, so the reasons `models
    score` gives can never disagree with what the detectors did.
    """
    if not math.isfinite(t):
        return Refusal.TIME_UNREADABLE
    if t < last_t:
        return Refusal.EARLIER
    if x is None or usable(x):
        return None
    return Refusal.NO_VALUE if not math.isfinite(x) else Refusal.TOO_LARGE


def profile_slot(t: float) -> int:
    """The daily-profile slot (half-hour of the UTC day) of a timestamp."""
    return int((t % _DAY_S) * PROFILE_SLOTS / _DAY_S) % PROFILE_SLOTS


def _clip(v: float) -> float:
    return CLIP if v > CLIP else (-CLIP if v < -CLIP else v)


@dataclass(slots=True)
class UnivariateFeatures:
    """Per-stream state of the univariate feature extractor (a few hundred bytes, bounded)."""

    n: int = 0
    last_t: float = -math.inf
    mean: float = 0.0
    var: float = 0.0
    gap: float = 0.0
    window: array[float] | None = None  # the last `WINDOW` values, oldest first
    profile: array[float] | None = None  # NaN where a slot is not known yet

    def accepts(self, t: float, x: float) -> bool:
        """NaN, infinite and huge (beyond `MAX_MAGNITUDE`) values, and readings older than the
        last one, are not taken in (`refusal` says why)."""
        return refusal(t, x, self.last_t) is None

    def step(self, t: float, x: float) -> tuple[list[float], float]:
        """The feature row and target for `x` at `t` (from the state before it), then take it in.

        Call only when `accepts(t, x)`.
        """
        window = self.window
        if window is None:
            window = self.window = array("d")
            self.profile = array("d", [math.nan]) * PROFILE_SLOTS
        profile = self.profile
        assert profile is not None
        slot = profile_slot(t)
        if self.n == 0:
            row = [0.0] * N_UNIVARIATE
            target = 0.0
        else:
            m = self.mean
            s = self._spread()
            past = window.tolist()
            past.reverse()  # most recent first
            past += [past[-1]] * (WINDOW - len(past))
            row = [_clip((v - m) / s) for v in past]
            known = not math.isnan(profile[slot])
            row.append(_clip((profile[slot] - m) / s) if known else 0.0)
            row.append(1.0 if known else 0.0)
            dt = t - self.last_t
            if self.gap > 0.0 and dt > 0.0:
                row.append(max(-3.0, min(3.0, math.log(dt / self.gap))))
            else:
                row.append(0.0)
            target = _clip((x - m) / s)
        self._take(t, x, slot)
        return row, target

    def _spread(self) -> float:
        # A floor relative to the level keeps a flat stream (or a stuck sensor) finite.
        return max(math.sqrt(self.var), 1e-3 * abs(self.mean), 1e-6)

    def _take(self, t: float, x: float, slot: int) -> None:
        n = self.n + 1
        a = max(1.0 / n, 1.0 / _LEVEL_SPAN)
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        if self.n > 0:
            dt = t - self.last_t
            if dt > 0.0:
                self.gap = dt if self.gap == 0.0 else self.gap + _GAP_ALPHA * (dt - self.gap)
        assert self.window is not None
        profile = self.profile
        assert profile is not None
        push(self.window, x, WINDOW)
        old = profile[slot]
        profile[slot] = x if math.isnan(old) else old + _PROFILE_ALPHA * (x - old)
        self.last_t = t
        self.n = n


#: Rows averaged by the causal smoothing of a multivariate system's columns.
SMOOTH_ROWS = 5
#: Rows over which a drifting column (a temperature) enters as its change, not its level.
RATE_ROWS = 30


@dataclass(slots=True)
class SystemFeatures:
    """Per-system state of the multivariate feature extractor (bounded: `RATE_ROWS` rows).

    Each row: every column's causal mean over the last `SMOOTH_ROWS` rows; the columns listed in
    `rate_columns` (temperatures, which drift as a loop warms up in normal operation) enter as the
    change of that mean over the last `RATE_ROWS` rows instead of its level. A missing value (NaN,
    infinite, or beyond `MAX_MAGNITUDE`) is carried from the column's last known one; a column
    never seen stays NaN.
    """

    columns: int
    rate_columns: tuple[int, ...] = ()
    last_t: float = -math.inf
    last: list[float] | None = None
    recent: deque[list[float]] | None = None
    smoothed: deque[list[float]] | None = None

    def accepts(self, t: float) -> bool:
        return refusal(t, None, self.last_t) is None

    def step(self, t: float, row: Sequence[float]) -> list[float]:
        """The feature row at `t` (call only when `accepts(t)`)."""
        last = self.last
        if last is None:
            last = [math.nan] * self.columns
            self.recent = deque(maxlen=SMOOTH_ROWS)
            self.smoothed = deque(maxlen=RATE_ROWS + 1)
        filled = [v if usable(v) else last[i] for i, v in enumerate(row)]
        self.last = filled
        self.last_t = t
        recent = self.recent
        smoothed = self.smoothed
        assert recent is not None
        assert smoothed is not None
        recent.append(filled)
        mean = []
        for i in range(self.columns):
            vals = [r[i] for r in recent if not math.isnan(r[i])]
            mean.append(sum(vals) / len(vals) if vals else math.nan)
        smoothed.append(mean)
        out = list(mean)
        oldest = smoothed[0]
        for i in self.rate_columns:
            out[i] = mean[i] - oldest[i] if not math.isnan(oldest[i]) else 0.0
        return out
