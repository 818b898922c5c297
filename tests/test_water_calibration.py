"""The water system's calibration is kept across restarts, and only where it still applies."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hub.config import WATER_CALIBRATION_FILE
from hub.measurements import Measurement
from models.water_service import WaterRows, WaterSystemConfig
from tests.models_support import pump_config, pump_seconds, water_rows

ROWS = 100


def _config(path: Path | None) -> WaterSystemConfig:
    return pump_config(ROWS, path)


def _calibrated(path: Path) -> WaterRows:
    rows = water_rows(_config(path))
    rows.score(pump_seconds(range(ROWS + 20), seed=1))
    assert rows.calibrated
    return rows


def test_a_restart_scores_with_the_calibration_kept_from_before(tmp_path: Path) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    first = _calibrated(path)
    assert path.exists()
    assert not first.restored
    later = pump_seconds(range(200, 300), seed=2, flow=20.0)  # a third of the flow is gone
    before = first.score(later)

    again = water_rows(_config(path))  # the hub restarted, during the fault
    assert again.calibrated
    assert again.restored
    assert again.calibration_note is None
    after = again.score(later)
    assert len(after) == len(before) == 100  # no calibration stretch this time
    assert all(score >= 0.5 for _, score in after[10:])  # the fault is still seen
    # Once the features' memory (5 + 30 rows, then a 5-row mean of scores) has refilled, the
    # scores are those the hub would have given without the restart.
    np.testing.assert_allclose([s for _, s in after[40:]], [s for _, s in before[40:]], rtol=1e-6)


def test_without_a_kept_calibration_a_restart_during_a_fault_learns_the_fault(
    tmp_path: Path,
) -> None:
    """Why it is kept: calibrating afresh on a faulty loop calls the fault normal."""
    rows = water_rows(_config(None))
    scores = rows.score(pump_seconds(range(200, 200 + ROWS + 50), seed=2, flow=20.0))
    assert all(score < 0.5 for _, score in scores[ROWS + 10 :])


def test_other_sensors_mean_a_fresh_calibration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    _calibrated(path)
    config = _config(path)
    moved = dataclasses.replace(
        config, columns=(*config.columns[:7], ("new-meter", Measurement.FLOW))
    )
    with caplog.at_level(logging.WARNING):
        rows = water_rows(moved)
    assert not rows.calibrated
    assert rows.calibration_note is not None
    assert "the sensors" in rows.calibration_note
    assert "calibrating afresh" in caplog.text


def test_another_model_file_means_a_fresh_calibration(tmp_path: Path) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    _calibrated(path)
    kept = json.loads(path.read_text())
    kept["model_sha256"] = "0" * 64
    path.write_text(json.dumps(kept))
    rows = water_rows(_config(path))
    assert not rows.calibrated
    assert rows.calibration_note is not None
    assert "the model" in rows.calibration_note


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda kept: "{not json", "Expecting property name"),
        (lambda kept: "[]", "not a JSON object"),
        (lambda kept: "[" * 100_000 + "]" * 100_000, "recursion"),
        (lambda kept: json.dumps({**kept, "calibration": None}), "not a JSON object"),
        (
            lambda kept: json.dumps({**kept, "calibration": {}}),
            "no 'mean', 'precision', 'spread', 't2_limit', 'used'",
        ),
        (
            lambda kept: json.dumps(
                {**kept, "calibration": {**kept["calibration"], "mean": [1.0, 2.0]}}
            ),
            "must fit 6 used columns",
        ),
        (
            lambda kept: json.dumps(
                {**kept, "calibration": {**kept["calibration"], "t2_limit": -1}}
            ),
            "non-finite or non-positive",
        ),
        (
            lambda kept: json.dumps({**kept, "calibrated_at": "2026-11-20T08:00:00Z"}),
            "calibrated_at",
        ),
        (lambda kept: json.dumps({**kept, "calibrated_at": 10**400}), "calibrated_at"),
        (  # a float64, beyond float32: onnxruntime would get an infinity
            lambda kept: json.dumps(
                {
                    **kept,
                    "calibration": {
                        **kept["calibration"],
                        "precision": [[1e39] * 6] * 6,
                    },
                }
            ),
            "'precision' beyond float32",
        ),
        (  # valid JSON, too large for a float
            lambda kept: json.dumps(
                {**kept, "calibration": {**kept["calibration"], "t2_limit": 10**400}}
            ),
            "non-finite or non-positive",
        ),
        (
            lambda kept: json.dumps(
                {**kept, "calibration": {**kept["calibration"], "mean": [10**400] * 6}}
            ),
            "non-finite or non-positive",
        ),
        (
            lambda kept: json.dumps(
                {**kept, "calibration": {**kept["calibration"], "spread": ["x"] * 6}}
            ),
            "wrong type",
        ),
    ],
)
def test_a_damaged_file_is_refused_with_the_reason_and_replaced(
    tmp_path: Path, damage: object, why: str
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    _calibrated(path)
    kept = json.loads(path.read_text())
    assert callable(damage)
    path.write_text(damage(kept))
    rows = water_rows(_config(path))
    assert not rows.calibrated
    assert rows.calibration_note is not None
    assert why in rows.calibration_note
    assert str(path) in rows.calibration_note
    rows.score(pump_seconds(range(ROWS + 1), seed=3))
    assert rows.calibrated
    assert rows.calibration_note is None  # kept again
    assert water_rows(_config(path)).restored


def test_a_calibration_that_cannot_be_kept_is_said_and_scoring_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    rows = water_rows(_config(blocker / WATER_CALIBRATION_FILE))
    scores = rows.score(pump_seconds(range(ROWS + 20), seed=1))
    assert rows.calibrated
    assert len(scores) == ROWS + 20
    assert rows.calibration_note is not None
    assert "cannot keep the calibration" in rows.calibration_note


def test_a_calibration_file_that_cannot_even_be_looked_for_is_said_and_scoring_goes_on(
    tmp_path: Path,
) -> None:
    """Any OSError while looking for the file or `models recalibrate`'s marker (a data dir the
    service user may not enter; here, a marker name past NAME_MAX, which root meets too)."""
    path = tmp_path / ("w" * 250 + ".json")  # the marker beside it: 262 characters
    rows = water_rows(_config(path))
    assert not rows.calibrated
    assert rows.calibration_note is not None
    assert "File name too long" in rows.calibration_note
    rows.score(pump_seconds(range(ROWS + 20), seed=1))
    assert rows.calibrated  # calibrated all the same, kept in memory
