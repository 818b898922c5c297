"""The water system's calibration stretch lasts long enough to hold the loop's warm-up, stays
bounded however long it lasts, and survives a restart while it is being taken."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hub.config import WATER_CALIBRATION_FILE
from hub.events import Reading
from models.water import MAX_STRETCH_ROWS, Stretch
from tests.models_support import pump_config, pump_readings, water_rows

WARM_UP_S = 1800.0  # the loop's flow settles over its first half hour


def _loop(seconds: range, seed: int, current: float = 1.3) -> list[Reading]:
    """A loop starting cold: its flow rises from 20 to 32 L/min, then holds there."""
    rng = np.random.default_rng(seed)
    return [
        r
        for s in seconds
        for r in pump_readings(rng, s, 32.0 - 12.0 * math.exp(-s / (WARM_UP_S / 3)), current)
    ]


def _alarms(scores: list[tuple[float, float]]) -> float:
    return float(np.mean([score >= 0.5 for _, score in scores]))


def test_a_stretch_that_ends_in_the_warm_up_calls_the_settled_loop_anomalous() -> None:
    """Why the daemon's stretch lasts hours: 400 rows of a loop warming up are not its normal."""
    rows = water_rows(pump_config(400))
    scores = rows.score(_loop(range(3 * 3600), seed=1))
    assert rows.calibrated
    assert _alarms(scores[3600:]) > 0.5  # most of the settled loop, all day


def test_a_stretch_that_holds_the_warm_up_calls_the_settled_loop_normal_and_a_fault_not() -> None:
    rows = water_rows(pump_config(400, calibrate_s=3600.0))
    scores = rows.score(_loop(range(3 * 3600), seed=1))
    assert rows.calibration_progress() == {
        "rows": 400,
        "seconds": 3600.0,
        "rows_needed": 400,
        "seconds_needed": 3600.0,
    }
    assert rows.calibrated
    assert _alarms(scores[3601:]) < 0.01
    fault = rows.score(_loop(range(3 * 3600, 3 * 3600 + 600), seed=2, current=2.0))
    assert _alarms(fault[30:]) == 1.0  # the pump motor draws half as much again


def test_the_stretch_lasts_its_rows_and_its_seconds() -> None:
    rows = water_rows(pump_config(1000, calibrate_s=600.0))
    rows.score(_loop(range(700), seed=1))  # 700 s, 700 rows: the rows are not there yet
    assert not rows.calibrated
    progress = rows.calibration_progress()
    assert (progress["rows"], progress["seconds"]) == (700, 699.0)
    rows.score(_loop(range(700, 1001), seed=1))
    assert rows.calibrated


def test_a_long_stretch_is_thinned_evenly_and_stays_bounded() -> None:
    stretch = Stretch()
    n = 5 * MAX_STRETCH_ROWS + 123
    for i in range(n):
        stretch.add(float(i), [float(i)])
    kept = [row[0] for row in stretch.rows]
    assert len(kept) < MAX_STRETCH_ROWS
    assert stretch.seen == n
    assert stretch.seconds == n - 1
    assert kept[0] == 0.0
    assert n - 1 - kept[-1] < stretch.stride  # the kept rows reach the stretch's end...
    assert set(np.diff(kept)) == {float(stretch.stride)}  # ...evenly spaced
    assert Stretch.from_json(json.loads(json.dumps(stretch.to_json())), 1) == stretch


def test_a_restart_resumes_the_stretch_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    config = pump_config(400, path, calibrate_s=3600.0)
    first = water_rows(config)
    first.score(_loop(range(2400), seed=1))
    first.keep_progress()  # what the service does hourly and at stop

    again = water_rows(config)  # the hub restarted 40 minutes into its stretch
    assert again.restored
    assert not again.calibrated
    assert again.calibration_progress()["rows"] == 2400
    again.score(_loop(range(2400, 3601), seed=1))
    assert again.calibrated  # after the hour, not an hour after the restart
    assert not again.restored  # fitted in this run
    assert "calibration" in json.loads(path.read_text())  # the fit replaced the stretch
    assert water_rows(config).calibrated


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda s: None, "not a JSON object"),
        (lambda s: {**s, "seen": None}, "'seen' and 'stride' must be integers"),
        (lambda s: {**s, "stride": 3}, "do not fit the rows kept"),
        (lambda s: {**s, "seen": s["seen"] + 7}, "do not fit the rows kept"),
        (lambda s: {**s, "rows": [[1.0] * 3]}, "rows of 8 numbers or nulls"),
        (lambda s: {**s, "rows": [["1"] * 8] * len(s["rows"])}, "rows of 8 numbers or nulls"),
        (lambda s: {**s, "first_at": s["last_at"] + 1}, "times in order"),
        # A 400-digit integer is valid JSON and too large for a float.
        (lambda s: {**s, "rows": [[10**400] * 8] * len(s["rows"])}, "rows of 8 numbers or nulls"),
        (lambda s: {**s, "last_at": 10**400}, "times in order"),
        # Beyond what the hub takes in (features.MAX_MAGNITUDE); 1e160 squared overflowed the fit.
        (
            lambda s: {**s, "rows": [[1e160] * 8] * len(s["rows"])},
            "numbers or nulls (within ±1e15)",
        ),
        (lambda s: {k: v for k, v in s.items() if k != "rows"}, "no rows"),
    ],
)
def test_a_damaged_stretch_is_refused_with_the_reason(
    tmp_path: Path, damage: object, why: str
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    config = pump_config(400, path, calibrate_s=3600.0)
    rows = water_rows(config)
    rows.score(_loop(range(100), seed=1))
    rows.keep_progress()
    kept = json.loads(path.read_text())
    assert callable(damage)
    path.write_text(json.dumps({**kept, "stretch": damage(kept["stretch"])}))
    again = water_rows(config)
    assert not again.restored
    assert again.calibration_progress()["rows"] == 0
    assert again.calibration_note is not None
    assert why in again.calibration_note
