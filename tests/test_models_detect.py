"""`score_table`: causal, in [0, 1], robust to NaN, gaps and disorder, and it finds faults."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.detect import detector, list_models, score_table
from models.train import synthetic
from models.univariate import StreamState, UnivariateDetector
from models.water import COLUMNS


def _stream(kind: str = "power", n: int = 2000, seed: int = 11) -> synthetic.Stream:
    return synthetic.make_stream(kind, n, np.random.default_rng(seed))


def _pump(n: int = 1200, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A pump loop at one row a second: eight noisy columns around their set points."""
    rng = np.random.default_rng(seed)
    ts = 1.6e9 + np.arange(n, dtype=np.float64)
    base = np.array([0.03, 0.04, 1.3, 0.3, 79.0, 26.0, 233.0, 32.0])
    noise = rng.normal(0, 1, (n, 8)) * np.array([0.001, 0.001, 0.05, 0.05, 0.1, 0.02, 2.0, 0.5])
    values = base + noise
    values[:, 4] += np.linspace(0, 3, n)  # the motor warms up: normal
    return ts, values


def test_models_are_listed() -> None:
    assert list_models() == ["univariate", "water_system"]


def test_scores_are_in_range_and_decided_by_the_threshold() -> None:
    s = _stream()
    result = score_table("univariate", s.t, s.x.reshape(-1, 1))
    assert result.scores.shape == (s.x.size,)
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    np.testing.assert_array_equal(result.is_anomaly, result.scores >= result.threshold)
    assert result.threshold == 0.5


@settings(max_examples=15, deadline=None)
@given(
    cut=st.integers(min_value=1, max_value=1499), shift=st.floats(-1e4, 1e4), seed=st.integers(0, 3)
)
def test_univariate_scores_are_causal(cut: int, shift: float, seed: int) -> None:
    s = _stream(n=1500, seed=seed)
    before = score_table("univariate", s.t, s.x.reshape(-1, 1)).scores
    future = s.x.copy()
    future[cut:] = future[cut:] * 3 + shift
    after = score_table("univariate", s.t, future.reshape(-1, 1)).scores
    np.testing.assert_array_equal(before[:cut], after[:cut])


@settings(max_examples=10, deadline=None)
@given(cut=st.integers(min_value=1, max_value=1199), shift=st.floats(-100, 100))
def test_water_scores_are_causal(cut: int, shift: float) -> None:
    ts, values = _pump()
    before = score_table("water_system", ts, values, calibrate_rows=400).scores
    future = values.copy()
    future[cut:, 7] += shift
    future[cut:, 2] = np.nan
    after = score_table("water_system", ts, future, calibrate_rows=400).scores
    np.testing.assert_array_equal(before[:cut], after[:cut])


def test_nan_and_out_of_order_readings_score_zero_and_change_nothing() -> None:
    s = _stream(n=1500)
    clean = score_table("univariate", s.t, s.x.reshape(-1, 1)).scores
    t = np.insert(s.t, [700, 900], [s.t[700], s.t[100]])  # a NaN, then a reading from the past
    x = np.insert(s.x, [700, 900], [np.nan, 5.0])
    messy = score_table("univariate", t, x.reshape(-1, 1)).scores
    assert messy[700] == 0.0
    assert messy[901] == 0.0
    np.testing.assert_array_equal(np.delete(messy, [700, 901]), clean)


def test_gaps_give_finite_scores() -> None:
    s = _stream(n=1500)
    t = s.t.copy()
    t[800:] += 3 * 86_400.0  # the sensor was away for three days
    scores = score_table("univariate", t, s.x.reshape(-1, 1)).scores
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("seed", range(6))
def test_a_surge_is_found_unless_a_detection_just_before_holds_the_stream_quiet(seed: int) -> None:
    s = synthetic.make_stream("voltage", 2000, np.random.default_rng(seed))
    clean = score_table("univariate", s.t, s.x.reshape(-1, 1))
    x = s.x.copy()
    x[1500] += 40.0  # a 40 V surge on a 230 V line
    result = score_table("univariate", s.t, x.reshape(-1, 1))
    np.testing.assert_array_equal(result.scores[:1500], clean.scores[:1500])
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    quiet = clean.is_anomaly[1500 - det.params.suppress : 1500].any()
    # The surprise channel averages over a short window: a surge reaches its full score on its
    # own reading, or on the next when the stream's usual errors are large beside it.
    assert result.is_anomaly[1500:1502].any() != quiet


def test_normal_household_streams_rarely_raise_a_detection() -> None:
    detections = readings = 0
    for i, kind in enumerate(synthetic.KINDS):
        s = synthetic.make_stream(kind, 3000, np.random.default_rng(100 + i))
        result = score_table("univariate", s.t, s.x.reshape(-1, 1))
        detections += int(result.is_anomaly.sum())
        readings += s.x.size
    assert detections / readings < 3 / 1000


def test_univariate_rejects_several_columns() -> None:
    with pytest.raises(ValueError, match="one column"):
        score_table("univariate", np.arange(3.0), np.zeros((3, 2)))


def test_water_calibrates_then_flags_a_closed_valve() -> None:
    ts, values = _pump()
    values[900:, 7] -= 10.0  # flow drops
    values[900:, 3] += 0.5  # pressure rises
    result = score_table("water_system", ts, values, calibrate_rows=400)
    assert (result.scores[:400] == 0).all()
    assert not result.is_anomaly[:900].any()
    assert result.is_anomaly[905:].all()


def test_water_runs_without_the_vibration_columns() -> None:
    ts, values = _pump()
    values[:, :2] = np.nan  # no accelerometers on this loop
    values[900:, 7] -= 10.0
    result = score_table("water_system", ts, values, calibrate_rows=400)
    assert np.isfinite(result.scores).all()
    assert not result.is_anomaly[:900].any()
    assert result.is_anomaly[905:].all()


def test_water_takes_eight_columns() -> None:
    assert len(COLUMNS) == 8
    with pytest.raises(ValueError, match="8 columns"):
        score_table("water_system", np.arange(3.0), np.zeros((3, 2)))


def test_stream_state_stays_small() -> None:
    s = _stream(n=5000)
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    state = StreamState()
    det.score_batch([(state, t, x) for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)])
    assert state.features.window is not None
    assert len(state.features.window) <= 12
    assert state.likelihood.recent is not None
    assert len(state.likelihood.recent) <= 10
    blocks = state.blocks  # the block scale's state is bounded the same way
    assert blocks.features.window is not None
    assert len(blocks.features.window) <= 12
    first = blocks.likelihood.first  # its first values, until its range is set
    assert first is None or len(first) <= det.params.warmup
    assert blocks.count < det.params.slow_block


def test_a_shift_too_small_for_single_readings_is_found_in_their_block_means() -> None:
    """Half a spread more than usual, for 400 readings: each reading is within the stream's
    noise; their means of 8 are not. Without the shift the block scale finds nothing there."""
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    t = 1.7e9 + 60.0 * np.arange(4200)
    noise = 20.0 + np.random.default_rng(1).normal(0.0, 1.0, t.size)
    shifted = noise.copy()
    shifted[3500:3900] += 0.8

    def events(x: np.ndarray, slow_block: int) -> np.ndarray:
        det.params = replace(params, slow_block=slow_block)
        state = StreamState()
        scores = det.score_batch(list(zip([state] * t.size, t.tolist(), x.tolist(), strict=True)))
        return np.asarray([s.event if s is not None else 0.0 for s in scores]) >= 0.5

    params = det.params
    try:
        found = events(shifted, params.slow_block)
        without_blocks = events(shifted, t.size + 1)
        clean = events(noise, params.slow_block)
    finally:
        det.params = params
    assert found[3500:3900].any()
    assert not without_blocks[3000:].any()
    assert not clean[3000:].any()


def test_a_stream_that_never_changed_is_not_called_stuck() -> None:
    t = 1.6e9 + 60.0 * np.arange(3000)
    result = score_table("univariate", t, np.full((3000, 1), 21.5))
    assert not result.is_anomaly.any()
    assert result.sustained.max() == 0.0


def test_a_stuck_sensor_is_one_event_however_long_it_stays_stuck() -> None:
    s = _stream("temperature", n=4000, seed=3)
    x = s.x.copy()
    x[2000:] = x[2000]  # the sensor freezes for the last 2000 readings
    result = score_table("univariate", s.t, x.reshape(-1, 1))
    clean = score_table("univariate", s.t, s.x.reshape(-1, 1))
    assert not clean.is_anomaly[2000:].any()
    assert result.is_anomaly[2000:].sum() == 1
    assert result.levels[-1] >= 0.5  # still stuck: the level stays up


def test_batches_of_interleaved_streams_score_as_each_stream_alone() -> None:
    """The daemon's batches mix streams and cut blocks anywhere; each score is still the one the
    stream gets on its own."""
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    a, b = _stream("power", 3000, 1), _stream("temperature", 3000, 2)
    alone = [
        det.score_batch([(state, t, x) for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)])
        for s, state in ((a, StreamState()), (b, StreamState()))
    ]
    states = StreamState(), StreamState()
    mixed = sorted(
        (t, i, x)
        for i, s in enumerate((a, b))
        for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)
    )
    together: tuple[list[object], list[object]] = ([], [])
    i = 0
    for size in [5, 13, 1, 700, 2, 3000, 10_000]:
        batch = mixed[i : i + size]
        for (_, which, _), score in zip(
            batch, det.score_batch([(states[k], t, x) for t, k, x in batch]), strict=True
        ):
            together[which].append(score)
        i += size
    assert i >= len(mixed)
    assert together[0] == alone[0]
    assert together[1] == alone[1]
    assert max(s.level for s in alone[0] + alone[1] if s is not None) > 0.0
