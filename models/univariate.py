"""The univariate streaming detector: shared features -> ONNX forecaster -> likelihood score.

Works on any numeric stream with no per-home training: the features normalise each stream by its
own running level and spread and learn its daily profile online; the ONNX graph (a small MLP,
trained on synthetic household streams) forecasts the next normalised value; the likelihood step
(`models.likelihood`) turns residuals into a score in [0, 1]. Beside it, each stream keeps the
sustained-deviation state (`models.sustained`): the score the anomaly rule gets. The same
forecaster and scoring also run on the means of every `slow_block` readings (`BlockScale`), and
each hour's mean is compared with the same hour of earlier weeks (`models.weekly`).

Scoring is batched: for a batch of readings (of one stream or many) the feature rows are built
first, the model runs once on all of them, then each residual is scored in order. This is exact,
because a feature row never depends on an earlier forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from models.features import N_UNIVARIATE, UnivariateFeatures
from models.likelihood import LikelihoodParams, LikelihoodState, Score
from models.ort_capi import Tensor
from models.runtime import LoadedModel
from models.sustained import SustainedParams, SustainedState
from models.weekly import WeeklyScale


@dataclass(slots=True)
class BlockScale:
    """The same detector on the means of `slow_block` readings in a row: a stream's slower scale.

    A change over tens of readings (a day's rhythm gone flat, a level creeping away) can hide in
    the noise of single readings and stand out in their means. Each block's mean is a reading of
    its own (at the time of the block's last reading) with its own features and likelihood state,
    scored by the same forecaster; its evidence (surprise, rarity, beyond: not the stuck channel,
    which the stream's own scale judges) enters the stream's score at the block's last reading.
    """

    total: float = 0.0
    count: int = 0
    features: UnivariateFeatures = field(default_factory=UnivariateFeatures)
    likelihood: LikelihoodState = field(default_factory=LikelihoodState)

    def add(self, p: LikelihoodParams, t: float, x: float) -> float | None:
        """Take in a reading; at a block's last, the block's mean."""
        self.total += x
        self.count += 1
        if self.count < p.slow_block:
            return None
        mean = self.total / self.count
        self.total = 0.0
        self.count = 0
        return mean


@dataclass(slots=True)
class StreamState:
    """Everything the detector keeps for one stream (bounded: 11-13 kB)."""

    features: UnivariateFeatures = field(default_factory=UnivariateFeatures)
    likelihood: LikelihoodState = field(default_factory=LikelihoodState)
    sustained: SustainedState = field(default_factory=SustainedState)
    blocks: BlockScale = field(default_factory=BlockScale)
    weekly: WeeklyScale = field(default_factory=WeeklyScale)
    refused: int = 0  # NaN, infinite or out-of-order readings not taken in


class UnivariateDetector:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.params = LikelihoodParams.from_card(model.card["streaming"])
        self.threshold = self.params.threshold
        self.sustained = SustainedParams.from_card(model.card.get("sustained"))

    def score_batch(self, items: Sequence[tuple[StreamState, float, float]]) -> list[Score | None]:
        """Scores of `(state, timestamp, value)` readings, in order; `None` where one is refused.

        A refused reading (NaN, infinite, or older than the stream's last) changes no state.
        """
        params = self.params
        rows: list[list[float]] = []
        targets: list[float] = []
        # (item, its row, the stream's usual interval then, the time-of-week scale's score, and
        # at a block's last reading the block's row and mean)
        taken: list[tuple[int, int, float, float, int, float]] = []

        def add_row(feats: UnivariateFeatures, t: float, x: float) -> int:
            row, target = feats.step(t, x)
            rows.append(row)
            targets.append(target)
            return len(rows) - 1

        for i, (state, t, x) in enumerate(items):
            feats = state.features
            if not feats.accepts(t, x):
                state.refused += 1
                continue
            since = t - feats.last_t  # inf for the stream's first reading
            j = add_row(feats, t, x)
            week = state.weekly.step(params, t, x, since, feats.gap)
            mean = state.blocks.add(params, t, x)
            if mean is None:
                taken.append((i, j, feats.gap, week, -1, 0.0))
            else:
                b = add_row(state.blocks.features, t, mean)
                taken.append((i, j, feats.gap, week, b, mean))
        out: list[Score | None] = [None] * len(items)
        if not rows:
            return out
        features = Tensor.of_rows(rows, N_UNIVARIATE)
        flat = self.model.run({self.model.session.inputs[0]: features}).column(0)
        sustained = self.sustained
        for i, j, gap, week, b, mean in taken:
            state, t, x = items[i]
            slow = week
            if b >= 0:
                block = state.blocks.likelihood.evidence(params, targets[b], flat[b], mean, t)
                slow = max(week, block)
            lk = state.likelihood
            level, event, _ = lk.score(params, targets[j], flat[j], x, t, slow)
            deviation = state.sustained.step(sustained, t, x, gap)
            stuck = min(1.0, 2.0 * lk.stuck_level(params))  # 0.5 at half the stuck limit
            out[i] = Score(level, event, max(deviation, stuck))
        return out
