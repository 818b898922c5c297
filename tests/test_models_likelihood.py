"""`models.likelihood`: the beyond channel (a value outside everything the stream has had)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.likelihood import LikelihoodParams, LikelihoodState

ON = LikelihoodParams()
OFF = LikelihoodParams(spatial_tolerance=math.inf)  # the channel never fires
START = 1.6e9


def _fed(params: LikelihoodParams, n: int, every_s: float) -> tuple[LikelihoodState, float]:
    """A stream between 20 and 22 (forecast perfectly: the surprise channel stays quiet)."""
    state = LikelihoodState()
    values = np.random.default_rng(4).uniform(20.0, 22.0, n)
    values[:2] = 20.0, 22.0  # the range is exactly 20..22
    at = START
    for i, x in enumerate(values.tolist()):
        at = START + i * every_s
        state.score(params, 0.0, 0.0, x, at)
    return state, at


def _levels(value: float, n: int = 600, every_s: float = 300.0) -> tuple[float, float]:
    """The level of `value` after `n` readings, with the channel and without it."""
    levels = []
    for params in (ON, OFF):
        state, at = _fed(params, n, every_s)
        levels.append(state.score(params, 0.0, 0.0, value, at + every_s).level)
    return levels[0], levels[1]


@pytest.mark.parametrize("value", [22.2, 19.8, 35.0, -5.0])
def test_a_value_beyond_the_range_by_more_than_the_tolerance_scores_one(value: float) -> None:
    on, off = _levels(value)  # two days of readings: the channel is awake
    assert on == 1.0
    assert off < 1.0  # the other channels alone would not say so


@pytest.mark.parametrize("value", [22.09, 19.91, 21.0])
def test_a_value_within_the_tolerance_is_left_to_the_other_channels(value: float) -> None:
    on, off = _levels(value)  # 5 % of the range 2.0 is 0.1
    assert on == off


def test_the_channel_waits_for_the_streams_first_day() -> None:
    on, off = _levels(35.0, n=600, every_s=60.0)  # 600 readings, but only ten hours
    assert on == off


def test_the_range_takes_the_value_in() -> None:
    state, at = _fed(ON, 600, 300.0)
    assert state.score(ON, 0.0, 0.0, 23.0, at + 300.0).level == 1.0
    assert (state.low, state.high) == (20.0, 23.0)
    # The same value again is no longer beyond anything (the other channels may still call it rare).
    again = state.score(ON, 0.0, 0.0, 23.0, at + 600.0).level
    off_state, _ = _fed(OFF, 600, 300.0)
    off_state.score(OFF, 0.0, 0.0, 23.0, at + 300.0)
    assert again == off_state.score(OFF, 0.0, 0.0, 23.0, at + 600.0).level
