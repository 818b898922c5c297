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


def _weekly_scores(
    t: np.ndarray, x: np.ndarray, p: LikelihoodParams = P, every_s: float = 600.0
) -> np.ndarray:
    """The time-of-week scale's scores of a stream read every `every_s` (its usual interval)."""
    return np.array(_fed(WeeklyScale(), t, x, p, every_s))


def _fed(
    scale: WeeklyScale, t: np.ndarray, x: np.ndarray, p: LikelihoodParams, every_s: float
) -> list[float]:
    """`scale` fed a stream's readings, each with the time since the one before (as the
    detector does, from its features); their scores."""
    since = np.diff(t, prepend=-np.inf).tolist()
    rows = zip(t.tolist(), x.tolist(), since, strict=True)
    return [scale.step(p, a, v, dt, every_s) for a, v, dt in rows]


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


def test_the_scale_waits_and_a_day_odd_while_it_learns_is_flagged_twice_at_most() -> None:
    """A slot is compared once seen in `week_after` weeks (2), and the scale scores once it has
    weighed `week_wait` differences (a week of them: every slot of the week once): an odd day in
    the first two weeks is not judged. It is learnt as part of the usual week, so a normal day
    of a later week may differ from the profile; differing the same way two weeks running, the
    slot takes the new mean as its usual one: flagged twice at most, never week after week."""
    for day in range(11):
        for seed in range(3):
            t, x = _home(9, holiday=day, seed=seed)
            scores = _weekly_scores(t, x)
            first = np.argmax(
                t >= MONDAY + P.week_after * WEEK_S + (P.week_wait + 2) * P.week_slot_s
            )
            assert np.all(scores[:first] == 0.0)
            assert int((scores >= P.threshold).sum()) <= 2, (day, seed)


def test_an_odd_hour_in_the_first_week_is_not_flagged_week_after_week() -> None:
    """Learnt before any usual difference is known, an odd hour stays in the profile; its
    steps clipped, the profile would unlearn it by a fraction of a usual difference a week, and
    the hour would be flagged every week the hold lets it for months."""
    rng = np.random.default_rng(0)
    t = MONDAY + np.arange(0.0, 20 * WEEK_S, 600.0)
    x = 100.0 + rng.normal(0.0, 1.0, t.size)  # a flat, quiet stream
    x[(t >= MONDAY + 3 * DAY_S + 10 * 3600.0) & (t < MONDAY + 3 * DAY_S + 11 * 3600.0)] += 20.0
    assert int((_weekly_scores(t, x) >= P.threshold).sum()) <= 1


def test_one_glitch_does_not_blind_the_scale() -> None:
    """A reading of 1e9 (accepted: below `features.MAX_MAGNITUDE`) makes its hour odd, once;
    the usual difference learns it as at most `week_cap` usual differences, so the holiday
    weeks later is still found (learnt whole, it would be missed for months)."""
    t, x = _home(10, holiday=59, seed=1)
    x[np.argmax(t >= MONDAY + 33.3 * DAY_S)] = 1e9
    scores = _weekly_scores(t, x)
    assert scores[_on_day(t, 59)].max() >= P.threshold


def test_irregular_readings_are_judged() -> None:
    """A sensor that reports at random times (every 60 s on average): an interval of three
    usual ones is common, and would leave hardly an hour judged; a hole of less than
    `week_gap_share` of the hour does not make it another hour."""
    rng = np.random.default_rng(5)
    t = MONDAY + np.cumsum(rng.exponential(60.0, 6 * 10_500))
    t = t[t < MONDAY + 6 * WEEK_S]
    day = ((t - MONDAY) // DAY_S).astype(int)
    hour = (t - MONDAY) % DAY_S / 3600.0
    at_home = (day % 7 >= 5) | (hour < 8) | (hour >= 17) | (day == 31)
    x = np.where(at_home, 300.0, 120.0) + 40.0 * np.sin(2 * np.pi * hour / 24.0)
    x += rng.normal(0.0, 15.0, t.size)
    scores = _weekly_scores(t, x, every_s=60.0)
    assert scores[_on_day(t, 31)].max() >= P.threshold
    assert scores[~_on_day(t, 31)].max() < P.threshold


def test_a_one_off_odd_hour_is_found_once_and_not_again_the_weeks_after() -> None:
    """The profile learns an odd hour only as far as `week_clip` usual differences: learnt
    whole, the same hour would differ from it the next weeks, the other way (an echo)."""
    t, x = _home(10, seed=1)
    x = x / 5.0  # a quiet stream: noise 3 W against a 150 W change
    odd = (t >= MONDAY + 5 * WEEK_S + 3 * DAY_S + 10 * 3600.0) & (
        t < MONDAY + 5 * WEEK_S + 3 * DAY_S + 11 * 3600.0
    )
    x[odd] += 150.0
    found = {}
    for name, params in (("clipped", P), ("learnt whole", dataclasses.replace(P, week_clip=1e9))):
        scores = _weekly_scores(t, x, params)
        found[name] = np.round((t[scores >= P.threshold] - MONDAY) / DAY_S, 1).tolist()
    assert found["clipped"] == [38.5]  # the first reading after the odd hour
    assert len(found["learnt whole"]) > 1


def _detections(t: np.ndarray, x: np.ndarray, params: LikelihoodParams) -> np.ndarray:
    det = UnivariateDetector(runtime.load("univariate"))
    det.params = params
    state = StreamState()
    scores = det.score_batch(list(zip([state] * t.size, t.tolist(), x.tolist(), strict=True)))
    return np.array([s.event if s is not None else 0.0 for s in scores]) >= params.threshold


def test_an_hour_cut_short_by_a_dropout_is_neither_judged_nor_learnt() -> None:
    """A pump that runs the first 10 minutes of every hour, read every minute: an hour whose
    readings stop at 10:12 (a two-hour dropout) or pause at 14:00 (a ten-minute restart) has
    another mean than a whole one, and says nothing of the week's rhythm."""
    rng = np.random.default_rng(0)
    t = MONDAY + np.arange(0.0, 7 * WEEK_S, 60.0)
    x = np.where((t - MONDAY) % 3600.0 < 600.0, 1000.0, 50.0) + rng.normal(0.0, 5.0, t.size)
    day = MONDAY + 38 * DAY_S
    kept = ~((t >= day + 10.2 * 3600.0) & (t < day + 12.2 * 3600.0))
    kept &= ~((t >= day + 14 * 3600.0) & (t < day + 14 * 3600.0 + 600.0))
    t, x = t[kept], x[kept]
    off = dataclasses.replace(P, week_after=10**6)
    by_default = _detections(t, x, P)
    assert np.array_equal(by_default, _detections(t, x, off))  # the scale added nothing
    whole = _detections(t, x, dataclasses.replace(P, week_gap_factor=1e9))
    assert whole.sum() > by_default.sum()  # judged as whole hours, they would have


def test_a_lasting_change_is_said_once_and_then_learnt() -> None:
    """Held for a week of slots once it fires, then the profile has taken the change in (its
    steps clipped, but the usual difference grew with the change): once in seven weeks."""
    t, x = _home(12)
    x[t >= MONDAY + 4 * WEEK_S + 2.5 * DAY_S] += 200.0  # from the fifth week's Wednesday noon
    scores = _weekly_scores(t, x)
    assert int((scores >= P.threshold).sum()) == 1
    week = (t >= MONDAY + 4 * WEEK_S) & (t < MONDAY + 5 * WEEK_S + 2.5 * DAY_S)
    unheld = _weekly_scores(t, x, dataclasses.replace(P, week_hold=0))
    assert int((unheld[week] >= P.threshold).sum()) > 10  # every slot, without the hold


def test_slots_missed_in_a_gap_are_neither_judged_nor_learnt() -> None:
    t, x = _home(6)
    gap = (t >= MONDAY + 3 * WEEK_S + 1.5 * DAY_S) & (t < MONDAY + 3 * WEEK_S + 4.5 * DAY_S)
    first_weeks = t < MONDAY + 3 * WEEK_S
    before = WeeklyScale()
    _fed(before, t[first_weeks], x[first_weeks], P, 600.0)
    assert before.profile is not None
    scale = WeeklyScale()
    scores = _fed(scale, t[~gap], x[~gap], P, 600.0)
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
        found[name] = bool(_detections(t, x, params)[_on_day(t, 31)].any())
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
