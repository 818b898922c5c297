"""The time-of-week scale: each hour's mean against the same hour of the weeks before.

A day that behaves like another day of the week (a holiday on a Thursday, a weekday spent at
home, a heating or irrigation schedule that did not run) is usual for its time of day, its level
and its range, and the forecaster (which knows the time of day, not the day of the week) predicts
it well. Only the week's rhythm says it is odd.

Per stream: the readings are averaged over each `week_slot_s` (an hour, a slot of the week: 168
of them). When a slot is over (the first reading of a later slot), its mean is compared with the
week's profile at that slot: an exponentially weighted mean (rate `week_rate`) of the slot's
means in earlier weeks, once the slot has been seen in `week_after` weeks. The difference over
its running mean (span `week_error_span` slots) is an error ratio; the mean of the last
`week_short` ratios against the running mean and variance of such means (span `week_long_span`)
is the anomaly likelihood on the log scale, like the surprise channel's
(`likelihood.error_likelihood`).
It enters the stream's score at that reading (`LikelihoodState.score`'s `slow`), from the
`week_wait`th slot compared on; once it reaches the threshold it is held at 0 for the next
`week_hold` slots (a week): a change that lasts is seen at one slot after another, all of them
the same change, and the profile needs weeks to take it in.

A slot without readings (a gap) is neither compared nor learnt. State: two arrays of 168 numbers
(the profile and its visits), a window of `week_short` ratios and a dozen numbers, about 3 kB.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from models.likelihood import WEEK_S, LikelihoodParams, error_likelihood

#: The smallest usual difference, against the value's size (a stream whose every week repeated
#: exactly must not make the smallest change infinitely unusual).
_REL_FLOOR = 1e-6
_ABS_FLOOR = 1e-9


def week_slots(p: LikelihoodParams) -> int:
    """The number of slots in a week (`week_slot_s` divides a week: the params check it)."""
    return round(WEEK_S / p.week_slot_s)


@dataclass(slots=True)
class WeeklyScale:
    """Per-stream state of the time-of-week scale."""

    slot: float = math.nan  # the slot being filled (its number since the epoch)
    total: float = 0.0  # the sum of its readings so far
    count: int = 0
    profile: array[float] | None = None  # by slot of the week: its usual mean (NaN: not seen)
    visits: array[float] | None = None  # by slot of the week: weeks seen (up to `week_after`)
    compared: int = 0  # slots compared with the profile
    mae: float = 0.0  # their usual difference
    recent: array[float] | None = None  # the last `week_short` error ratios
    recent_sum: float = 0.0
    long_mean: float = 0.0  # the running mean and variance of the ratios' short-term means
    long_var: float = 0.0
    held: int = 0  # slots the channel is still held at 0 for

    def step(self, p: LikelihoodParams, t: float, x: float) -> float:
        """Take in one reading (finite, not older than the last); the channel's score in [0, 1]
        (0 but at the first reading of a slot, when the slot before is judged)."""
        slot = t // p.week_slot_s
        score = 0.0
        if self.count and slot != self.slot:
            score = self._close(p)
        if not self.count:
            self.slot = slot
        self.total += x
        self.count += 1
        return score

    def _close(self, p: LikelihoodParams) -> float:
        """The slot being filled is over: compare its mean with the profile, then learn it."""
        slots = week_slots(p)
        if self.profile is None or self.visits is None:
            self.profile = array("d", [math.nan]) * slots
            self.visits = array("d", [0.0]) * slots
        k = int(self.slot % slots)
        mean = self.total / self.count
        self.total = 0.0
        self.count = 0
        usual = self.profile[k]
        score = self._compare(p, mean, usual) if self.visits[k] >= p.week_after else 0.0
        self.profile[k] = mean if self.visits[k] == 0 else usual + p.week_rate * (mean - usual)
        self.visits[k] = min(self.visits[k] + 1.0, float(p.week_after))
        return score

    def _compare(self, p: LikelihoodParams, mean: float, usual: float) -> float:
        n = self.compared = self.compared + 1
        floor = _ABS_FLOOR + _REL_FLOOR * abs(usual)
        judged = error_likelihood(
            self, n, abs(mean - usual), floor, p.week_short, p.week_error_span, p.week_long_span
        )
        if judged is None or n - 2 <= p.week_wait:
            return 0.0
        _, score = judged
        if self.held > 0:
            self.held -= 1
            return 0.0
        if score >= p.threshold:
            self.held = p.week_hold
        return score
