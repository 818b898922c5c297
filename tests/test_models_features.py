"""The feature code is one: training and the daemon build the same rows from the same stream."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest

from models.features import N_UNIVARIATE, WINDOW, SystemFeatures, UnivariateFeatures
from models.ort_capi import Tensor
from models.runtime import LoadedModel, load
from models.train import synthetic
from models.train.univariate import feature_rows
from models.univariate import StreamState, UnivariateDetector


class _RecordingSession:
    """Stands in for onnxruntime: records the rows the detector feeds the model."""

    inputs = ("features",)

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def run(self, feeds: dict[str, Tensor]) -> list[Tensor]:
        rows = feeds["features"]
        self.rows.append(np.frombuffer(rows.values, dtype=np.float32).reshape(rows.shape).copy())
        n = rows.shape[0]
        return [Tensor(array("f", [0.0] * n), (n, 1))]


def _stream(seed: int = 3, n: int = 600) -> synthetic.Stream:
    return synthetic.make_stream("temperature", n, np.random.default_rng(seed))


def test_daemon_feeds_the_model_the_rows_training_built() -> None:
    s = _stream()
    trained_rows, _ = feature_rows(s.t, s.x)
    session = _RecordingSession()
    card = load("univariate").card
    detector = UnivariateDetector(LoadedModel("univariate", card, session))  # type: ignore[arg-type]
    state = StreamState()
    readings = list(zip(s.t.tolist(), s.x.tolist(), strict=True))
    # The daemon scores in batches of whatever size arrived: here 1, 7, 50, ...
    i = 0
    for size in [1, 7, 50, 3, 200, 1000]:
        detector.score_batch([(state, t, x) for t, x in readings[i : i + size]])
        i += size
    fed = np.concatenate(session.rows)
    # After every `slow_block` readings comes the row of their mean (the stream's block scale),
    # built by the same feature code from the stream of block means.
    block = int(card["streaming"]["slow_block"])
    blocks = len(readings) // block
    means = s.x[: blocks * block].reshape(blocks, block).mean(axis=1)
    block_rows, _ = feature_rows(s.t[block - 1 :: block][:blocks], means)
    expected = []
    for i, row in enumerate(trained_rows):
        expected.append(row)
        if (i + 1) % block == 0:
            expected.append(block_rows[i // block])
    assert fed.shape == (len(readings) + blocks, N_UNIVARIATE)
    np.testing.assert_allclose(fed, np.asarray(expected, dtype=np.float32), rtol=1e-6)


def test_a_row_uses_only_earlier_values() -> None:
    s = _stream(n=100)
    rows, targets = feature_rows(s.t, s.x)
    changed = s.x.copy()
    changed[60:] += 1000.0
    rows2, targets2 = feature_rows(s.t, changed)
    np.testing.assert_array_equal(rows[:61], rows2[:61])  # row 60 is built before x[60]
    np.testing.assert_array_equal(targets[:60], targets2[:60])
    assert not np.array_equal(rows[61:], rows2[61:])


def test_flat_stream_stays_finite_and_clipped() -> None:
    feats = UnivariateFeatures()
    rows = [feats.step(float(t), 5.0)[0] for t in range(50)]
    row, target = feats.step(50.0, 6.0)  # a stuck value that moves
    assert all(math.isfinite(v) for r in rows for v in r)
    assert target == 10.0
    assert len(row) == N_UNIVARIATE


@pytest.mark.parametrize(
    ("t", "x"), [(10.0, math.nan), (10.0, math.inf), (math.nan, 1.0), (4.0, 1.0)]
)
def test_nan_and_out_of_order_are_not_taken_in(t: float, x: float) -> None:
    feats = UnivariateFeatures()
    feats.step(5.0, 1.0)
    assert not feats.accepts(t, x)


def test_window_is_bounded() -> None:
    feats = UnivariateFeatures()
    for t in range(10 * WINDOW):
        feats.step(float(t), float(t))
    assert feats.window is not None
    assert len(feats.window) == WINDOW


def test_system_features_carry_missing_values_and_smooth() -> None:
    feats = SystemFeatures(3, rate_columns=(2,))
    first = feats.step(0.0, [1.0, math.nan, 20.0])
    assert first[0] == 1.0
    assert math.isnan(first[1])  # never seen: stays unknown
    assert first[2] == 0.0  # a rate column starts at no change
    second = feats.step(1.0, [3.0, 2.0, math.nan])
    assert second == [2.0, 2.0, 0.0]  # NaN temperature carried: no change
    third = feats.step(2.0, [3.0, math.nan, 26.0])
    assert third[1] == 2.0
    assert third[2] == pytest.approx((20 + 20 + 26) / 3 - 20)
