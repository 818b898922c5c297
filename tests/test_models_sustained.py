"""The sustained-deviation score: silent through the warm-up, deaf to a spike, moved by a level
shift and kept moved, causal, bounded, and the same in `score_table` as in the daemon."""

from __future__ import annotations

import numpy as np

from models.detect import score_table
from models.sustained import SustainedParams, SustainedState
from models.train import synthetic


def _stream() -> synthetic.Stream:
    # A reading a minute for four days.
    return synthetic.make_stream("voltage", 4 * 1440, np.random.default_rng(4))


def test_the_first_day_and_a_normal_stream_stay_far_below_the_threshold() -> None:
    s = _stream()
    sustained = score_table("univariate", s.t, s.x.reshape(-1, 1)).sustained
    # Only the stuck channel (a run of one reading) shows through the first day.
    assert sustained[s.t < s.t[0] + 86_400].max() < 0.05
    assert sustained.max() < 0.2  # far below the threshold 0.5 and the rule's lower band 0.4
    assert ((sustained >= 0) & (sustained < 1)).all()


def test_a_spike_barely_moves_it_and_a_level_shift_moves_it_and_keeps_it_moved() -> None:
    s = _stream()
    clean = score_table("univariate", s.t, s.x.reshape(-1, 1)).sustained
    sd = float(np.std(s.x[:3500]))
    spiked = s.x.copy()
    spiked[3500] += 12 * sd
    after_spike = score_table("univariate", s.t, spiked.reshape(-1, 1)).sustained
    assert np.abs(after_spike - clean).max() < 0.05
    shifted = s.x.copy()
    shifted[3500:] += 4 * sd
    after_shift = score_table("univariate", s.t, shifted.reshape(-1, 1)).sustained
    hours = (s.t - s.t[3500]) / 3600
    assert after_shift[hours < 0].max() < 0.2
    assert (after_shift[(hours > 6) & (hours < 20)] >= 0.5).all()


def test_it_is_causal_and_its_state_is_bounded() -> None:
    s = _stream()
    p = SustainedParams()
    state = SustainedState()
    first = [state.step(p, t, x, 60.0) for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)]
    other = SustainedState()
    cut = 4000
    future = s.x.copy()
    future[cut:] = future[cut:] * 3 + 100
    second = [other.step(p, t, x, 60.0) for t, x in zip(s.t.tolist(), future.tolist(), strict=True)]
    assert first[:cut] == second[:cut]
    assert state.recent is not None
    assert len(state.recent) == p.blocks
    assert state.profile is not None
    assert len(state.profile) == len(state.seen) == 48


def test_the_water_model_reports_its_score_as_the_sustained_one() -> None:
    rng = np.random.default_rng(2)
    ts = 1.6e9 + np.arange(600, dtype=np.float64)
    values = np.array([0.03, 0.04, 1.3, 0.3, 79.0, 26.0, 233.0, 32.0]) + rng.normal(
        0, 0.01, (600, 8)
    )
    result = score_table("water_system", ts, values, calibrate_rows=400)
    np.testing.assert_array_equal(result.sustained, result.scores)
