"""`models.weekly`: the time-of-week scale. A weekday that behaves like a Sunday (a holiday, a day
at home) is usual for its time of day, level and range; only the week's rhythm says it is odd."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from models import runtime, state_file
from models.likelihood import WEEK_S, LikelihoodParams
from models.univariate import StreamState, UnivariateDetector
from models.weekly import WeeklyScale, week_slots

P = LikelihoodParams()
MONDAY = 1_699_833_600.0  # Monday 13 November 2023, 00:00 UTC
DAY_S = 86_400.0


def _home(
    weeks: int, holiday: int | None = None, every_s: float = 600.0, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """A home's power over `weeks` weeks from a Monday: on weekdays the house is empty from 8
    to 17 h (a low base), at weekends it is busy all day; noise on top. On day `holiday` (from
    the first Monday) a weekday is spent at home: a weekend day's pattern."""
    rng = np.random.default_rng(seed)
    t = MONDAY + np.arange(0.0, weeks * WEEK_S, every_s)
    day = ((t - MONDAY) // DAY_S).astype(int)
    hour = (t - MONDAY) % DAY_S / 3600.0
    at_home = (day % 7 >= 5) | (hour < 8) | (hour >= 17)
    if holiday is not None:
        at_home |= day == holiday
    x = np.where(at_home, 300.0, 120.0) + 40.0 * np.sin(2 * np.pi * hour / 24.0)
    return t, x + rng.normal(0.0, 15.0, t.size)


def _weekly_scores(t: np.ndarray, x: np.ndarray, p: LikelihoodParams = P) -> np.ndarray:
    scale = WeeklyScale()
    return np.array([scale.step(p, a, v) for a, v in zip(t.tolist(), x.tolist(), strict=True)])


def _on_day(t: np.ndarray, day: int) -> np.ndarray:
    """The readings of day `day` (from the first Monday), and the first one after it (where the
    day's last slot is judged)."""
    start = MONDAY + day * DAY_S
    return (t >= start) & (t <= start + DAY_S)


def test_a_weekday_spent_at_home_is_found() -> None:
    t, x = _home(6, holiday=31)  # the Thursday of the fifth week
    scores = _weekly_scores(t, x)
    assert scores[_on_day(t, 31)].max() >= P.threshold
    assert scores[~_on_day(t, 31)].max() < P.threshold


def test_weeks_that_repeat_themselves_are_never_found_odd() -> None:
    for seed in range(4):
        t, x = _home(8, seed=seed)
        assert _weekly_scores(t, x).max() < P.threshold


def test_the_scale_waits_and_a_day_odd_while_it_learns_leaves_no_echo() -> None:
    """A slot is compared once seen in `week_after` weeks (2), and the scale scores from the
    `week_wait`th slot compared on (a week of them: the differences of every slot of the week
    seen once). An odd Thursday in the second week is not judged, and the profile it marked
    does not make the fourth week's Thursday odd."""
    t, x = _home(4, holiday=10)
    scores = _weekly_scores(t, x)
    first = np.argmax(t >= MONDAY + P.week_after * WEEK_S + P.week_wait * P.week_slot_s)
    assert np.all(scores[:first] == 0.0)
    assert scores.max() < P.threshold


def test_a_lasting_change_is_said_once_for_the_week_it_holds() -> None:
    t, x = _home(7)
    x[t >= MONDAY + 4 * WEEK_S + 2.5 * DAY_S] += 200.0  # from the fifth week's Wednesday noon
    scores = _weekly_scores(t, x)
    week = (t >= MONDAY + 4 * WEEK_S) & (t < MONDAY + 5 * WEEK_S + 2.5 * DAY_S)
    assert int((scores[week] >= P.threshold).sum()) == 1
    unheld = _weekly_scores(t, x, dataclasses.replace(P, week_hold=0))
    assert int((unheld[week] >= P.threshold).sum()) > 10  # every slot, without the hold


def test_slots_missed_in_a_gap_are_neither_judged_nor_learnt() -> None:
    t, x = _home(6)
    gap = (t >= MONDAY + 3 * WEEK_S + 1.5 * DAY_S) & (t < MONDAY + 3 * WEEK_S + 4.5 * DAY_S)
    first_weeks = t < MONDAY + 3 * WEEK_S
    before = WeeklyScale()
    for a, v in zip(t[first_weeks].tolist(), x[first_weeks].tolist(), strict=True):
        before.step(P, a, v)
    assert before.profile is not None
    scale = WeeklyScale()
    scores = [scale.step(P, a, v) for a, v in zip(t[~gap].tolist(), x[~gap].tolist(), strict=True)]
    assert max(scores) < P.threshold  # after the gap each slot meets its own slot of the week
    assert scale.profile is not None
    assert scale.visits is not None
    thursday_noon = int((MONDAY + 3 * DAY_S + 12 * 3600.0) // P.week_slot_s % week_slots(P))
    # Visited in weeks 1 to 3 and 5 to 6, never in the gap (the visits stop counting at 2).
    assert scale.visits[thursday_noon] == P.week_after
    assert scale.profile[thursday_noon] == pytest.approx(before.profile[thursday_noon], abs=20.0)


def test_the_detector_finds_the_day_at_home_only_with_the_weekly_scale() -> None:
    """Through the whole detector: its other channels (forecast, rarity, range, block means)
    see a usual day, the weekly scale an odd Thursday."""
    t, x = _home(6, holiday=31)
    found = {}
    for name, params in (("with", P), ("without", dataclasses.replace(P, week_after=10**6))):
        det = UnivariateDetector(runtime.load("univariate"))
        det.params = params
        state = StreamState()
        scores = det.score_batch(list(zip([state] * t.size, t.tolist(), x.tolist(), strict=True)))
        events = np.array([s.event if s is not None else 0.0 for s in scores])
        found[name] = bool(events[_on_day(t, 31)].max() >= P.threshold)
    assert found == {"with": True, "without": False}


@pytest.mark.parametrize("slot_s", [7000.0, 0.0, -3600.0, 2 * WEEK_S, float("nan")])
def test_a_slot_that_does_not_divide_a_week_is_refused(slot_s: float) -> None:
    with pytest.raises(ValueError, match=f"week_slot_s {slot_s} does not divide a week"):
        LikelihoodParams(week_slot_s=slot_s)


def test_a_state_learning_the_week_passes_the_checks_and_reads_back_exactly(
    tmp_path: Path,
) -> None:
    """Saved at any point (inside a slot, while held), a stream's state passes the state file's
    checks and scores on exactly as the state kept in memory."""
    det = UnivariateDetector(runtime.load("univariate"))
    t, x = _home(6, holiday=31)
    x[::211] = np.nan  # refused readings too
    sha = str(det.model.card["sha256"])
    path = tmp_path / "streams.json"
    kept = StreamState()
    rows = list(zip(t.tolist(), x.tolist(), strict=True))
    held = False
    # 4473: the holiday's 01:30, inside a slot; 4700: the next day, the channel held
    cuts = (0, 1, 7, 3000, 4473, 4700, t.size)
    for start, stop in itertools.pairwise(cuts):
        det.score_batch([(kept, a, v) for a, v in rows[start:stop]])
        state_file.check_numbers(kept)
        state_file.check_shapes(kept, det.params, det.sustained)
        held |= kept.weekly.held > 0
        state_file.save(path, sha, MONDAY, {"home/power": (kept, rows[stop - 1][0])})
        ((_, (restored, _)),) = state_file.load(path, sha, det.params, det.sustained).items()
        rest = rows[stop : stop + 500]
        in_memory = copy.deepcopy(kept)
        assert det.score_batch([(restored, a, v) for a, v in rest]) == det.score_batch(
            [(in_memory, a, v) for a, v in rest]
        )
    assert held  # one cut fell while the channel was held
