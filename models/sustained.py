"""The sustained-deviation score: has a stream moved away from its usual self, and stayed there?

What the daemon publishes for the anomaly rule (`AnomalyService(publish="sustained")`). The
univariate detector's level score reacts to onsets (a spike, a jump) and then adapts to the new
level within a few hundred readings; a rule that opens incidents needs the opposite: a score
that a single spike barely moves, that a level shift, drift, leak or stuck sensor moves and keeps
moved until the stream's slow reference catches up (days), and that stays low on a normal stream.

Per stream, time-aware (streams report every 10 s to 5 min):

1. **Blocks**: readings are averaged over blocks of `block_s` seconds, or `block_readings` usual
   intervals when that is longer (15 min at 10-75 s sampling, 1 h at 5 min); the window is the
   last `blocks` block means (3 h, or 12 h at 5 min): long against a normal event (an appliance
   run, a shower, a water draw), short against a fault that lasts.
2. **Quartiles against a slow daily profile**: at each block's end, the window's lower and upper
   quartiles are compared with their own daily profiles (48 half-hour slots, the slots of
   `models.features`; each an exponentially weighted mean over about `profile_days` days of
   visits, a cumulative mean over the first). The deviation is the smaller of the two residuals
   when both have the same sign, else 0: the whole window moved. A spike moves one block mean
   and no quartile; an event of one sign (an appliance on, a draw) moves one quartile only; a
   level shift, drift or leak moves both and keeps them moved until the profile catches up.
3. **Normal size**: a tracked `tail_q` quantile of the deviation (log-scale steps, memory
   growing to `spread_days`): what a normal day's excursions reach.
4. **Score**: `a = deviation / max(margin * tail, min_shift * sd)` (`sd`: the stream's slow
   spread of raw values, so a stream whose profile repeats exactly still needs a shift of
   `min_shift` spreads), taken as the smaller of this block's and the previous block's
   (one odd block is not enough); `score = a / (1 + a)`, the model's threshold 0.5 at `a = 1`.
   The score changes once a block and is repeated for the readings in between.

The first `warmup_s` (a day: every profile slot is learnt once) and then `settle_s` (the tail
quantile learns fast) score 0. A slot not visited before (a gap of more than a day) scores 0 until
it is. The univariate detector combines this (maximum) with its *stuck* channel (a sensor that
stopped measuring is no deviation from the profile when it stops at a usual value).

State per stream: two 48-slot profiles, 48 visit times, `blocks` means and a dozen numbers
(about 2.5 kB); about 1 µs per reading.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

from models.bounded import push
from models.features import PROFILE_SLOTS, profile_slot
from models.quantile import track_quantile


@dataclass(frozen=True, slots=True)
class SustainedParams:
    """The sustained-deviation step (defaults; a card may carry its own under `sustained`)."""

    warmup_s: float = 86_400.0
    settle_s: float = 6 * 3600.0
    block_s: float = 900.0
    blocks: int = 12
    block_readings: float = 12.0
    profile_days: float = 3.0
    spread_days: float = 3.0
    quartile: float = 0.25
    tail_q: float = 0.98
    margin: float = 4.0
    min_shift: float = 1.25

    @classmethod
    def from_card(cls, data: dict[str, Any] | None) -> SustainedParams:
        defaults = cls()
        if not data:
            return defaults
        return cls(**{k: type(v)(data.get(k, v)) for k, v in asdict(defaults).items()})

    def to_card(self) -> dict[str, Any]:
        return asdict(self)


_SLOT_S = 86_400.0 / PROFILE_SLOTS
#: A flat stream (or a perfectly repeated profile) must not make every wobble infinitely unusual.
_REL_FLOOR = 1e-3
_ABS_FLOOR = 1e-9


def _rate(dt: float, span_s: float) -> float:
    """The weight of a step of `dt` seconds for an exponential memory of `span_s` seconds."""
    return -math.expm1(-dt / span_s)


@dataclass(slots=True)
class SustainedState:
    """Per-stream state of the sustained-deviation score (bounded: 48 slots, `blocks` means)."""

    first_t: float = math.nan
    block_t: float = math.nan  # start of the block being filled
    block_sum: float = 0.0
    block_n: int = 0
    recent: array[float] | None = None  # the means of the last `blocks` blocks
    profile: array[float] | None = None  # lower quartile per slot; NaN where never visited
    profile_hi: array[float] | None = None  # upper quartile per slot
    seen: array[float] = field(default_factory=lambda: array("d"))  # seconds of visits per slot
    n: int = 0
    last_t: float = math.nan
    level: float = 0.0  # the stream's slow mean and variance (the residual's floor)
    var: float = 0.0
    tail: float = math.nan  # the tracked `tail_q` quantile of |residual|
    last_a: float = 0.0  # the previous block's deviation in units of its limit
    score: float = 0.0

    def step(self, p: SustainedParams, t: float, x: float, gap: float) -> float:
        """Take in `x` at `t` (finite, not older than the last reading); the stream's score.

        `gap`: the stream's usual interval between readings (`UnivariateFeatures.gap`); a block
        spans at least `block_readings` of them.
        """
        if self.recent is None:
            self.recent = array("d")
            self.profile = array("d", [math.nan]) * PROFILE_SLOTS
            self.profile_hi = array("d", [math.nan]) * PROFILE_SLOTS
            self.seen = array("d", [0.0]) * PROFILE_SLOTS
            self.first_t = self.block_t = self.last_t = t
        elif t - self.block_t >= max(p.block_s, p.block_readings * gap):
            self._close(p, t)
        self.block_sum += x
        self.block_n += 1
        n = self.n = self.n + 1
        d = x - self.level
        a = max(1.0 / n, _rate(max(t - self.last_t, 1.0), p.spread_days * 86_400.0))
        self.level += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.last_t = t
        return self.score

    def _learn(
        self, p: SustainedParams, profile: array[float] | None, t: float, w: float, m: float
    ) -> float:
        """Residual of `m` against its profile slot for `t` (NaN if never visited); learn it."""
        assert profile is not None
        slot = profile_slot(t)
        old = profile[slot]
        if math.isnan(old):
            profile[slot] = m
            return math.nan
        a = max(w / self.seen[slot], _rate(w, p.profile_days * _SLOT_S))
        profile[slot] = old + a * (m - old)
        return m - old

    def _close(self, p: SustainedParams, t: float) -> None:
        """The block before `t` is complete: its mean joins the window, the score is updated."""
        recent = self.recent
        assert recent is not None
        mean = self.block_sum / self.block_n
        w = min(t - self.block_t, 86_400.0)  # the seconds this block stands for
        self.block_t = t
        self.block_sum = 0.0
        self.block_n = 0
        push(recent, mean, p.blocks)
        if len(recent) < p.blocks:
            return
        self.seen[profile_slot(t)] += w
        ordered = sorted(recent)
        k = round(p.quartile * (len(ordered) - 1))
        lo_r = self._learn(p, self.profile, t, w, ordered[k])
        hi_r = self._learn(p, self.profile_hi, t, w, ordered[-1 - k])
        age = t - self.first_t
        if age < p.warmup_s or math.isnan(lo_r) or math.isnan(hi_r):
            self.score = 0.0
            return
        # The whole window moved: both quartiles on the same side of their profiles. Events
        # of one sign (an appliance on, a water draw) move one quartile only.
        r = min(lo_r, hi_r) if lo_r > 0.0 else (-max(lo_r, hi_r) if hi_r < 0.0 else 0.0)
        r = max(r, 0.0)
        floor = max(_REL_FLOOR * abs(self.level), _ABS_FLOOR)
        tail = self.tail
        if math.isnan(tail):
            tail = max(r, floor)
        settling = age < p.warmup_s + p.settle_s
        # The quantile's memory grows with the time it has learnt, up to `spread_days`.
        eta = _rate(w, min(max(age - p.warmup_s, p.settle_s / 8.0), p.spread_days * 86_400.0))
        # A tracked high quantile of |r| (log-scale steps): what a normal day's excursions reach.
        tail = track_quantile(tail, r, p.tail_q, eta)
        tail = self.tail = max(tail, floor)
        if settling:
            self.score = 0.0
            return
        a = r / max(p.margin * tail, p.min_shift * math.sqrt(self.var))
        # Two blocks in a row: one odd block (a profile slot learnt from few visits) is not enough.
        both = min(a, self.last_a)
        self.last_a = a
        self.score = both / (1.0 + both)
