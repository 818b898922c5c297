"""`models.likelihood`: the beyond channel (a value outside everything the stream has had), the
surprise channel's gate (a burst like a bursty stream's usual ones is no surprise) and the rarity
channel's hold (one detection per excursion into new territory)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.likelihood import LikelihoodParams, LikelihoodState

ON = LikelihoodParams()
OFF = LikelihoodParams(spatial_tolerance=math.inf)  # the channel never fires
UNGATED = dataclasses.replace(ON, surprise_gate=0.0)  # every short-term mean is beyond the usual
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


def _burst(params: LikelihoodParams, size: float) -> float:
    """The strongest evidence of 10 forecast errors `size` times a stream's noise, after 3,000
    readings with a burst of 10 errors 6 times the noise every 150 (a bursty stream, like a
    kettle's power or a tweet count). The value stays put: the other channels keep quiet."""
    state = LikelihoodState()
    rng = np.random.default_rng(1)
    errors = rng.normal(0.0, 0.3, 3010)
    for k in range(300, 3000, 150):
        errors[k : k + 10] *= 6.0
    errors[3000:] *= size
    evidence = [
        state.evidence(params, e, 0.0, 21.0, START + i * 60.0)
        for i, e in enumerate(errors.tolist())
    ]
    return max(evidence[3000:])


def test_a_burst_twice_the_streams_usual_ones_is_no_surprise() -> None:
    assert _burst(UNGATED, 12.0) == 1.0  # the Gaussian tail alone: certain
    assert _burst(ON, 12.0) < ON.threshold


def test_a_burst_far_beyond_the_usual_ones_still_is() -> None:
    assert _burst(ON, 20.0) == 1.0
    assert _burst(ON, 3.0) < ON.threshold  # and the noise itself never was


RARITY_ONLY = OFF  # the beyond channel never fires; the surprise channel stays quiet (no error)
NO_HOLD = dataclasses.replace(RARITY_ONLY, rarity_hold=1)


def _excursion(params: LikelihoodParams, after: int) -> tuple[float, float, float]:
    """The levels of three visits to never-visited levels (each in a bin of its own) of a stream
    between 20 and 22 (1,200 readings 5 minutes apart): 23.5, then 19.3 one reading later, then
    19.7 `after` readings of its usual values later."""
    state, at = _fed(params, 1200, 300.0)
    first = state.score(params, 0.0, 0.0, 23.5, at := at + 300.0).level
    second = state.score(params, 0.0, 0.0, 19.3, at := at + 300.0).level
    for x in np.random.default_rng(5).uniform(20.0, 22.0, after).tolist():
        state.score(params, 0.0, 0.0, x, at := at + 300.0)
    return first, second, state.score(params, 0.0, 0.0, 19.7, at + 300.0).level


def test_the_rarity_channel_says_a_wander_into_new_territory_once() -> None:
    first, second, _ = _excursion(RARITY_ONLY, 10)
    assert first >= RARITY_ONLY.threshold
    assert second < RARITY_ONLY.threshold  # held: the same excursion
    assert _excursion(NO_HOLD, 10)[1] >= NO_HOLD.threshold  # what it held


def test_the_rarity_channel_speaks_again_after_its_hold() -> None:
    # The hold runs from the last visit to new territory (the second, held, visit restarts it):
    # a stream still wandering stays one event.
    hold = RARITY_ONLY.rarity_hold
    assert _excursion(RARITY_ONLY, hold - 2)[2] < RARITY_ONLY.threshold  # its last reading
    assert _excursion(RARITY_ONLY, hold - 1)[2] >= RARITY_ONLY.threshold
