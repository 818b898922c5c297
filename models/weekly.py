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
(`likelihood.error_likelihood`). It enters the stream's score at that reading
(`LikelihoodState.score`'s `slow`) once `week_wait` ratios have been weighed (a week of them:
every slot of the week once); once it reaches the threshold it is held at 0 for the next
`week_hold` slots compared (a week without gaps): a change that lasts is seen at one slot after
another, all of them the same change.

The profile learns a compared slot's difference only up to `week_clip` usual differences: an odd
hour learnt whole would make the same hour of the next weeks differ from the profile the other
way (an echo). A slot that differs beyond that the same way two weeks running takes its new mean
as its usual one: a change that lasts, or an odd day learnt in the first `week_after` weeks,
before any usual difference was known (the same day of a later week may then be flagged, twice
at most). The usual difference itself learns a difference of at most `week_cap` usual ones: one
glitch reading (1e9 W) would otherwise make every later difference look small for months.

A slot is compared and learnt only if its readings covered it: none further apart, nor from
the reading before it or after it, than `week_gap_factor` times the stream's usual interval or
`week_gap_share` of the slot (6 minutes of an hour; a sensor reporting at random times often has
an interval of three usual ones). An hour cut short by a dropout or a restart has another mean
than a whole one (a pump that runs the first minutes of every hour); a shorter hole is taken as
it is, and a slot without readings is skipped. State: three arrays of 168 numbers (the profile,
its visits, the sign of each slot's last difference beyond the clip), a window of `week_short`
ratios and a dozen numbers, about 4.5 kB.
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
    widest: float = 0.0  # the widest interval around the readings of the slot being filled
    profile: array[float] | None = None  # by slot of the week: its usual mean (NaN: not seen)
    visits: array[float] | None = None  # by slot of the week: weeks seen (up to `week_after`)
    odd: array[float] | None = None  # by slot: the sign of its last difference beyond the clip
    compared: int = 0  # slots compared with the profile
    mae: float = 0.0  # their usual difference
    recent: array[float] | None = None  # the last `week_short` error ratios
    recent_sum: float = 0.0
    long_mean: float = 0.0  # the running mean and variance of the ratios' short-term means
    long_var: float = 0.0
    held: int = 0  # slots the channel is still held at 0 for

    def step(
        self, p: LikelihoodParams, t: float, x: float, since: float, usual_interval: float
    ) -> float:
        """Take in one reading (finite, not older than the last); the channel's score in [0, 1]
        (0 but at the first reading of a slot, when the slot before is judged). `since`: the
        time since the stream's reading before (inf for its first); `usual_interval`: the
        stream's usual interval between readings, this one's included (both from
        `UnivariateFeatures`)."""
        slot = t // p.week_slot_s
        if not self.count:  # this scale's first reading (in a stream it may join late: an
            since = math.inf  # older state file): the hour before it was not taken in
        score = 0.0
        if self.count and slot != self.slot:
            allowed = max(p.week_gap_factor * usual_interval, p.week_gap_share * p.week_slot_s)
            score = self._close(p, max(self.widest, since) <= allowed)
        if self.count:
            self.widest = max(self.widest, since)
        else:
            self.slot = slot
            self.widest = since
        self.total += x
        self.count += 1
        return score

    def _close(self, p: LikelihoodParams, whole: bool) -> float:
        """The slot being filled is over: compare its mean with the profile, then learn it; only
        if its readings covered it `whole` (none further apart, nor from those before and after
        it, than `week_gap_factor` usual intervals or `week_gap_share` of the slot): an hour cut
        short by a dropout or a restart is not the hour it would have been."""
        mean = self.total / self.count
        self.total = 0.0
        self.count = 0
        if not whole:
            return 0.0
        slots = week_slots(p)
        if self.profile is None or self.visits is None or self.odd is None:
            self.profile = array("d", [math.nan]) * slots
            self.visits = array("d", [0.0]) * slots
            self.odd = array("d", [0.0]) * slots
        k = int(self.slot % slots)
        usual = self.profile[k]
        score = 0.0
        if self.visits[k] == 0:
            self.profile[k] = mean
        elif self.visits[k] < p.week_after:
            self.profile[k] = usual + p.week_rate * (mean - usual)
        else:
            score = self._compare(p, mean, usual)
            self.profile[k] = self._learnt(p, k, mean, usual)
        self.visits[k] = min(self.visits[k] + 1.0, float(p.week_after))
        return score

    def _compare(self, p: LikelihoodParams, mean: float, usual: float) -> float:
        """The channel's score for a slot of mean `mean` whose profile says `usual`."""
        n = self.compared = self.compared + 1
        judged = error_likelihood(
            self,
            n,
            abs(mean - usual),
            _ABS_FLOOR + _REL_FLOOR * abs(usual),
            p.week_short,
            p.week_error_span,
            p.week_long_span,
            cap=p.week_cap,
        )
        if judged is None or n - 2 < p.week_wait:
            return 0.0
        _, score = judged
        if self.held > 0:
            self.held -= 1
            return 0.0
        if score >= p.threshold:
            self.held = p.week_hold
        return score

    def _learnt(self, p: LikelihoodParams, k: int, mean: float, usual: float) -> float:
        """Slot `k`'s usual mean after a compared `mean`: a step of `week_rate` towards it, the
        difference taken at most `week_clip` usual differences (a one-off odd hour learnt whole
        would make the same hour of the next weeks odd the other way), unless the slot differed
        beyond that the same way the week before too: then `mean` is its new usual (a change that
        lasts, or a profile that learnt an odd week before the usual difference was known)."""
        assert self.odd is not None
        step = mean - usual
        bound = p.week_clip * self.mae
        if self.compared <= 2 or abs(step) <= bound:
            self.odd[k] = 0.0
            return usual + p.week_rate * step
        sign = 1.0 if step > 0 else -1.0
        if self.odd[k] == sign:
            self.odd[k] = 0.0
            return mean
        self.odd[k] = sign
        return usual + p.week_rate * sign * bound
