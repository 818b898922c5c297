"""The univariate streaming detector: shared features -> ONNX forecaster -> likelihood score.

Works on any numeric stream with no per-home training: the features normalise each stream by its
own running level and spread and learn its daily profile online; the ONNX graph (a small MLP,
trained on synthetic household streams) forecasts the next normalised value; the likelihood step
(`models.likelihood`) turns residuals into a score in [0, 1]. Beside it, each stream keeps the
sustained-deviation state (`models.sustained`): the score the anomaly rule gets.

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


@dataclass(slots=True)
class StreamState:
    """Everything the detector keeps for one stream (bounded: about 9 kB)."""

    features: UnivariateFeatures = field(default_factory=UnivariateFeatures)
    likelihood: LikelihoodState = field(default_factory=LikelihoodState)
    sustained: SustainedState = field(default_factory=SustainedState)
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
        rows: list[list[float]] = []
        targets: list[float] = []
        taken: list[int] = []
        for i, (state, t, x) in enumerate(items):
            feats = state.features
            if feats.accepts(t, x):
                row, target = feats.step(t, x)
                rows.append(row)
                targets.append(target)
                taken.append(i)
            else:
                state.refused += 1
        out: list[Score | None] = [None] * len(items)
        if not rows:
            return out
        features = Tensor.of_rows(rows, N_UNIVARIATE)
        flat = self.model.run({self.model.session.inputs[0]: features}).column(0)
        params = self.params
        sustained = self.sustained
        for j, i in enumerate(taken):
            state, t, x = items[i]
            lk = state.likelihood
            level, event, _ = lk.score(params, targets[j], flat[j], x, t)
            deviation = state.sustained.step(sustained, t, x, state.features.gap)
            stuck = min(1.0, 2.0 * lk.stuck_level(params))  # 0.5 at half the stuck limit
            out[i] = Score(level, event, max(deviation, stuck))
        return out
