"""From a forecast residual and a value to an anomaly score in [0, 1]: the state after the model.

Four channels, each turned into "how improbable is this" on a log scale, combined by their maximum:

1. **Surprise** (the forecast): the error `|target - forecast| + level_weight * |target|` (the
   second term: how far the reading is from the stream's running level, in spreads) over its own
   running mean, so a noisy stream and a quiet one are judged on their own terms. The short-term
   mean of that ratio is compared with its long-term distribution (running mean and variance);
   the Gaussian tail probability is the **anomaly likelihood** of Ahmad et al. 2017 (Numenta's HTM
   detector), reported on a log scale: 0.5 means a tail probability of 1e-5, 1.0 one of 1e-10.
   Once the stream's first day is seen (the rarity and beyond channels are awake) a short-term
   mean counts only when it is more than `surprise_gate` times the stream's usual high one (a
   tracked `surprise_quantile`, the 99th percentile): a bursty stream's Gaussian tail is too
   thin, and each of its usual bursts would be a surprise.
2. **Rarity** (density): a histogram of the stream's values over a long, slowly forgetting
   history (`value_bins` bins over the range of the stream's first day and `warmup` readings at
   least, widened by half on each side, plus one bin below and one above; it starts from the
   first `warmup` values, and the rest of that stretch spread evenly over its range). A value
   in a bin holding a tiny share of that history scores `log(share) / log(value_floor)`: a level
   the stream has never visited is rare even when it is reached slowly enough to be forecast.
   On the readings' own scale, once it reaches the threshold it is held at 0 until
   `rarity_hold` readings have passed without a visit to new territory: a stream wandering
   into new territory visits one empty bin after another, all of them the same change.
3. **Stuck**: a run of identical values longer than `stuck_factor` times the longest run seen
   before (and at least `stuck_min` readings) reaches 0.5: a sensor that stopped measuring. A
   stream that has never changed is not judged (its first run is its normal).
4. **Beyond**: a value outside every value the stream has had, by more than `spatial_tolerance`
   of their range, scores 1.0 (the *spatial anomaly* of Numenta's HTM detector, Ahmad et al.
   2017, with its tolerance of 5 %): a freezer warmer, or a current higher, than ever before. Like
   the rarity channel it waits for the stream's first day, so a daily cycle is seen whole first.

The surprise channel enters raised to `surprise_power` (> 1): a forecast residual alone is the
noisiest of the channels, so it must be stronger than the others to fire, while a certain one
(1.0) still is (NAB standard 62.8 with the cube, 59.5 taken as it is, both before the beyond
channel). Its short-term mean makes a lone spike reach 1.0 on the reading after it, or on the
spike itself when it is large against the stream's usual errors.

The surprise, rarity and beyond channels also run on the stream's means of `slow_block`
readings (`models.univariate.BlockScale`, with a state of its own: `evidence`); `score` takes
that evidence in at a block's last reading beside its own channels, and the time-of-week scale's
(`models.weekly`: each hour against the same hour of earlier weeks) at the first reading of an
hour. Its parameters are the `week_*` ones here.

**Suppression**: after a detection (a score at or above the threshold) the stream's *event*
score is 0 for the next `suppress` readings: one event, one detection, not a burst of repeats
(what NAB-style scoring and `models score` report). A stuck run is one event too: it enters the
event score only at the reading where it reaches the limit. The *level* is the score before
suppression (what the daemon publishes with `publish="level"`).

The first `warmup` readings of a stream score 0 (its level, spread, error scale and range are
not known yet). All state is bounded: a dozen floats, a short window, `value_bins + 2` counts.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Protocol

from models.bounded import push_sum
from models.quantile import track_quantile

#: A week in seconds: the time-of-week scale's period (`models.weekly`).
WEEK_S = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class LikelihoodParams:
    """The streaming part of a univariate model; stored in its card (`streaming`)."""

    warmup: int = 300
    threshold: float = 0.5
    suppress: int = 100
    surprise_power: float = 3.0
    surprise_gate: float = 3.0
    surprise_quantile: float = 0.99
    surprise_rate: float = 0.003
    rarity_hold: int = 1500
    level_weight: float = 0.5
    error_span: float = 300.0
    short_window: int = 10
    long_span: float = 8640.0
    value_bins: int = 32
    value_span: float = 20_000.0
    value_prior: float = 0.1
    value_floor: float = 1e-8
    value_after_s: float = 86_400.0
    stuck_factor: float = 3.0
    stuck_min: int = 30
    spatial_tolerance: float = 0.05
    slow_block: int = 8
    week_slot_s: float = 3600.0
    week_rate: float = 0.25
    week_after: int = 2
    week_error_span: float = 500.0
    week_short: int = 6
    week_long_span: float = 2000.0
    week_wait: int = 168
    week_hold: int = 168
    week_clip: float = 3.0
    week_cap: float = 10.0
    week_gap_factor: float = 3.0
    week_gap_share: float = 0.1

    def __post_init__(self) -> None:
        slots = WEEK_S / self.week_slot_s if self.week_slot_s > 0 else 0.0
        if not (slots >= 1.0 and slots == round(slots)):
            raise ValueError(f"week_slot_s {self.week_slot_s} does not divide a week")

    @classmethod
    def from_card(cls, data: dict[str, Any]) -> LikelihoodParams:
        defaults = cls()
        return cls(**{k: type(v)(data[k]) for k, v in asdict(defaults).items()})

    def to_card(self) -> dict[str, Any]:
        return asdict(self)


class Score(NamedTuple):
    """One reading's scores in [0, 1]: `level` before suppression, `event` after it, and
    `sustained` (`models.sustained`, combined with the stuck channel: what the rule gets)."""

    level: float
    event: float
    sustained: float = 0.0


_ZERO = Score(0.0, 0.0)
_LOG_1E10 = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)
#: The smallest spread of the short-term means (a perfectly forecast stream is not infinitely sure).
_MIN_STD = 0.05
#: The ceiling of an error over the stream's usual error (one reading cannot outweigh ten more).
MAX_RATIO = 50.0
#: The smallest tracked high of the short-term means (it moves by factors: never stuck at 0).
MIN_HIGH = 1e-3


class ErrorTrack(Protocol):
    """What `error_likelihood` keeps of a stream of errors (fields of the scale's state)."""

    mae: float  # the usual error
    recent: array[float] | None  # the last error ratios
    recent_sum: float
    long_mean: float  # the running mean and variance of the ratios' short-term means
    long_var: float


def error_likelihood(
    track: ErrorTrack,
    n: int,
    err: float,
    floor: float,
    window: int,
    error_span: float,
    long_span: float,
    cap: float = math.inf,
) -> tuple[float, float] | None:
    """Take in the `n`th error of a stream; its short-term mean of error ratios and that mean's
    anomaly likelihood (Ahmad et al. 2017), or `None` for the first two errors.

    The ratio is the error over the usual error before it (at least `floor`; at most
    `MAX_RATIO`); the short-term mean is over the last `window` ratios; its likelihood is its
    Gaussian tail against the running mean and variance of the short-term means before it, on
    the log scale (0.5 at a tail probability of 1e-5, 1.0 at 1e-10). Spans: the usual error's
    (`error_span`) and the short-term means' (`long_span`), both running means from the start.
    From the 4th error on, the usual error learns an error of at most `cap` usual errors (at
    least `floor`; one glitch must not make every later error look small for months).
    """
    scale = track.mae
    limit = cap * max(scale, floor)
    learnt = limit if n > 3 and err > limit else err
    track.mae += max(1.0 / n, 1.0 / error_span) * (learnt - track.mae)
    if n <= 2:
        return None
    ratio = min(err / max(scale, floor), MAX_RATIO)
    if track.recent is None:
        track.recent = array("d")
    track.recent_sum = push_sum(track.recent, ratio, window, track.recent_sum)
    short = track.recent_sum / len(track.recent)
    mean, var = track.long_mean, track.long_var
    tail = 0.5 * math.erfc((short - mean) / (max(math.sqrt(var), _MIN_STD) * _SQRT2))
    rate = max(1.0 / (n - 2), 1.0 / long_span)
    d = short - mean
    track.long_mean, track.long_var = mean + rate * d, (1.0 - rate) * (var + rate * d * d)
    return short, min(1.0, math.log(max(tail, 1e-10)) / _LOG_1E10)


@dataclass(slots=True)
class Rarity:
    """A slowly forgetting histogram of a stream's values (weights grow instead of decaying)."""

    low: float
    high: float
    counts: array[float]
    total: float = 0.0
    weight: float = 1.0

    def bin(self, x: float) -> int:
        if x < self.low:
            return 0
        bins = len(self.counts) - 2
        if x >= self.high:
            return bins + 1
        return 1 + min(bins - 1, int((x - self.low) / (self.high - self.low) * bins))

    def add(self, k: int, growth: float) -> None:
        self.counts[k] += self.weight
        self.total += self.weight
        self.weight *= growth
        if self.weight > 1e100:  # renormalise now and then; ratios are unchanged
            w = self.weight
            self.counts = array("d", [c / w for c in self.counts])
            self.total /= w
            self.weight = 1.0


@dataclass(slots=True)
class LikelihoodState:
    """Per-stream state of the scoring steps."""

    n: int = 0
    mae: float = 0.0
    long_mean: float = 0.0
    long_var: float = 0.0
    recent: array[float] | None = None  # the last `short_window` error ratios
    recent_sum: float = 0.0
    surprise_high: float = math.nan  # a tracked `surprise_quantile` of the short-term means
    quiet: int = 0
    first: array[float] | None = field(default_factory=lambda: array("d"))  # first `warmup` values
    first_at: float = math.nan
    low: float = math.inf  # the range of every value taken in
    high: float = -math.inf
    seen: int = 0
    rarity: Rarity | None = None
    rarity_quiet: int = 0  # readings the rarity channel is still held for (`rarity_hold`)
    last_value: float = math.nan
    run: int = 0  # readings in a row with exactly the same value
    longest_run: int = 0  # the longest such run before the current one

    def score(
        self,
        p: LikelihoodParams,
        target: float,
        forecast: float,
        value: float,
        at: float,
        slow: float = 0.0,
    ) -> Score:
        """Take in one reading; return its scores. `slow`: the slower scales' evidence for this
        reading (the block scale's at a block's last reading, `models.univariate.BlockScale`; the
        time-of-week scale's at the first reading of a slot, `models.weekly`; else 0), counted
        like this scale's surprise, rarity and beyond channels."""
        surprise, rare, beyond = self._channels(p, target, forecast, value, at)
        # The rarity hold is this scale's, the readings' own (not the block scale's).
        evidence = max(surprise, self._held(p, rare), beyond, slow)
        was_stuck = self.stuck_level(p) >= 0.5
        stuck = self._stuck(p, value)
        if self.n <= p.warmup:
            return _ZERO
        level = max(evidence, stuck)
        if self.quiet > 0:
            self.quiet -= 1
            return Score(level, 0.0)
        event = max(evidence, 0.0 if was_stuck else stuck)
        if event >= p.threshold:
            self.quiet = p.suppress
        return Score(level, event)

    def evidence(
        self, p: LikelihoodParams, target: float, forecast: float, value: float, at: float
    ) -> float:
        """Take in one reading's value and forecast; the strongest of its surprise, rarity and
        beyond channels (0 through the warm-up): the block scale's evidence. The stuck channel
        and the rarity hold are `score`'s."""
        return max(self._channels(p, target, forecast, value, at))

    def _channels(
        self, p: LikelihoodParams, target: float, forecast: float, value: float, at: float
    ) -> tuple[float, float, float]:
        """Take in one reading's value and forecast: its surprise, rarity and beyond channels
        (all 0 through the warm-up)."""
        n = self.n = self.n + 1
        gated = at - self.first_at >= p.value_after_s  # the other channels are awake
        surprise = self._surprise(p, target, forecast, gated) ** p.surprise_power
        beyond = self._beyond(p, value, at)
        rare = self._rarity(p, value, at)
        return (0.0, 0.0, 0.0) if n <= p.warmup else (surprise, rare, beyond)

    def _held(self, p: LikelihoodParams, rare: float) -> float:
        """The rarity channel once per excursion: a stream wandering into new territory visits
        one empty bin after another, and each would be a detection of the same change."""
        held = self.rarity_quiet > 0
        if held:
            self.rarity_quiet -= 1
        if rare >= p.threshold:
            self.rarity_quiet = p.rarity_hold - 1
        return 0.0 if held else rare

    def _surprise(self, p: LikelihoodParams, target: float, forecast: float, gated: bool) -> float:
        err = abs(target - forecast) + p.level_weight * abs(target)
        n = self.n
        judged = error_likelihood(self, n, err, 1e-3, p.short_window, p.error_span, p.long_span)
        if judged is None:
            return 0.0
        short, likelihood = judged
        # Once the rarity and beyond channels are awake: only a short-term mean well beyond the
        # stream's usual high ones (a bursty stream's Gaussian tail is too thin: its every burst
        # would be a surprise). Before, the surprise channel is the only one to see a surge.
        high = self.surprise_high
        beyond_usual = not gated or math.isnan(high) or short > p.surprise_gate * high
        if math.isnan(high):
            high = short
        else:
            rate = max(1.0 / n, p.surprise_rate)
            high = track_quantile(high, short, p.surprise_quantile, rate)
        self.surprise_high = max(high, MIN_HIGH)
        return likelihood if beyond_usual else 0.0

    def _beyond(self, p: LikelihoodParams, value: float, at: float) -> float:
        """1.0 for a value further outside the stream's range so far than `spatial_tolerance` of
        it (0 until the stream is `value_after_s` old; `score` holds the warm-up); then the
        range takes the value in."""
        if math.isnan(self.first_at):
            self.first_at = at
        low, high = self.low, self.high
        self.low = min(low, value)
        self.high = max(high, value)
        if at - self.first_at < p.value_after_s or not low < high:
            return 0.0
        margin = p.spatial_tolerance * (high - low)
        return 1.0 if value > high + margin or value < low - margin else 0.0

    def _rarity(self, p: LikelihoodParams, value: float, at: float) -> float:
        rarity = self.rarity
        if rarity is None:
            self.seen += 1
            first = self.first
            assert first is not None
            if len(first) < p.warmup:
                first.append(value)
            if self.seen <= p.warmup or at - self.first_at < p.value_after_s:
                return 0.0
            rarity = self.rarity = self._histogram(p, first)
            self.first = None
        k = rarity.bin(value)
        share = (rarity.counts[k] + p.value_prior * rarity.weight) / (rarity.total + rarity.weight)
        rarity.add(k, 1.0 / (1.0 - 1.0 / p.value_span))
        return min(1.0, math.log(max(share, p.value_floor)) / math.log(p.value_floor))

    def _stuck(self, p: LikelihoodParams, value: float) -> float:
        if value == self.last_value:
            self.run += 1
        else:
            self.longest_run = max(self.longest_run, self.run)
            self.run = 1
            self.last_value = value
        return self.stuck_level(p)

    def stuck_level(self, p: LikelihoodParams) -> float:
        """The stuck channel as of the last reading (0 during the warm-up, and while the stream
        has never changed)."""
        if self.n <= p.warmup or self.longest_run == 0:
            return 0.0
        limit = max(p.stuck_min, p.stuck_factor * self.longest_run)
        return min(1.0, 0.5 * self.run / limit)

    def _histogram(self, p: LikelihoodParams, first: array[float]) -> Rarity:
        """The histogram once the range is known: the first `warmup` values as they were, and
        the rest of the first stretch (only its range is kept) spread evenly over that range."""
        span = max(self.high - self.low, 1e-9)
        bins = p.value_bins
        rarity = Rarity(
            self.low - 0.5 * span, self.high + 0.5 * span, array("d", [0.0]) * (bins + 2)
        )
        for v in first:
            rarity.counts[rarity.bin(v)] += 1.0
        rest = self.seen - 1 - len(first)
        lo, hi = rarity.bin(self.low), rarity.bin(self.high)
        for k in range(lo, hi + 1):
            rarity.counts[k] += rest / (hi - lo + 1)
        rarity.total = float(self.seen - 1)
        return rarity
