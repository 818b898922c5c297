"""What the calibration file holds stays what the hub has fitted, and `models recalibrate` is not
undone by the running hub: a fit that could not be written is written later; a recalibration
asked while the hub runs is done by the hub instead of overwritten by its next save."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

import models.water_service
from hub.bus import Bus, Subscription
from hub.cli import main
from hub.cli_models import recalibrate
from hub.config import WATER_CALIBRATION_FILE, recalibrate_marker
from hub.events import AnomalyScore
from models.service import AnomalyService
from tests.models_support import (
    Clock,
    pump_config,
    pump_readings,
    pump_seconds,
    running,
    take,
    water_rows,
    water_scores,
)

ROWS = 100


def _full_disk(path: Path, data: Any) -> NoReturn:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_fit_that_could_not_be_written_is_written_at_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    rows = water_rows(pump_config(ROWS, path))
    rows.score(pump_seconds(range(50), seed=1))
    rows.keep_progress()  # an hourly save during the stretch
    assert "stretch" in json.loads(path.read_text())
    with monkeypatch.context() as disk:
        disk.setattr(models.water_service, "write_json", _full_disk)
        rows.score(pump_seconds(range(50, ROWS + 20), seed=1))  # the fit, on a full disk
    assert rows.calibrated
    assert rows.calibration_note is not None
    assert "cannot keep the calibration" in rows.calibration_note

    rows.keep_progress()  # space freed; the next hourly save
    kept = json.loads(path.read_text())
    assert "calibration" in kept
    assert "stretch" not in kept
    assert rows.calibration_note is None
    again = water_rows(pump_config(ROWS, path))  # a restart: the fit, not the old stretch
    assert again.calibrated
    assert again.restored
    later = pump_seconds(range(200, 300), seed=2, flow=20.0)
    after, before = again.score(later), rows.score(later)  # the same fit: once the features'
    # memory has refilled (as after any restart), the same scores
    np.testing.assert_allclose([s for _, s in after[40:]], [s for _, s in before[40:]], rtol=1e-6)
    monkeypatch.setattr(models.water_service, "write_json", _full_disk)
    rows.keep_progress()  # kept now: not written again at every save
    assert rows.calibration_note is None


@pytest.mark.parametrize("fitted", [False, True], ids=["stretch", "calibration"])
def test_recalibrate_while_the_hub_runs_is_not_undone_by_its_next_save(
    tmp_path: Path, fitted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    config = pump_config(ROWS, path, calibrate_s=0.0 if fitted else 3600.0)
    rows = water_rows(config)
    rows.score(pump_seconds(range(ROWS + 20), seed=1))
    rows.keep_progress()
    assert rows.calibrated == fitted
    assert path.exists()

    assert recalibrate(path) == 0  # the pump was replaced
    assert not path.exists()
    assert recalibrate_marker(path).exists()
    with caplog.at_level(logging.INFO):
        rows.keep_progress()  # the hub's next hourly save, or its save at stop
        rows.keep_progress()
    assert not path.exists()  # the old stretch or fit was not written back
    assert not recalibrate_marker(path).exists()
    assert not rows.calibrated
    assert rows.calibration_progress()["rows"] == 0  # it calibrates afresh, now
    assert rows.calibration_note is not None
    assert "models recalibrate" in rows.calibration_note
    assert caplog.text.count("models recalibrate") == 1  # said once

    rows.score(pump_seconds(range(1000, 1000 + ROWS + 20), seed=5, flow=20.0))  # the new pump
    assert rows.calibrated == fitted
    rows.keep_progress()
    again = water_rows(config)
    assert again.restored
    assert again.calibration_progress()["rows"] == (ROWS if fitted else ROWS + 20)


def test_a_fit_that_completes_after_recalibrate_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    rows = water_rows(pump_config(ROWS, path))
    rows.score(pump_seconds(range(50), seed=1))
    recalibrate(path)
    rows.score(pump_seconds(range(50, ROWS + 20), seed=1))  # the old stretch completes
    assert not path.exists()
    assert not rows.calibrated
    assert not recalibrate_marker(path).exists()


def test_a_marker_at_start_means_a_fresh_calibration_whatever_the_file_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / WATER_CALIBRATION_FILE
    rows = water_rows(pump_config(ROWS, path))
    rows.score(pump_seconds(range(ROWS + 20), seed=1))
    kept = path.read_text()
    recalibrate(path)
    path.write_text(kept)  # as if an older hub had written it back after the command
    with caplog.at_level(logging.INFO):
        again = water_rows(pump_config(ROWS, path))
    assert not again.calibrated
    assert not again.restored
    assert not path.exists()
    assert not recalibrate_marker(path).exists()
    assert "models recalibrate" in caplog.text
    assert water_rows(pump_config(ROWS, path)).calibration_note is None  # done once


def test_models_recalibrate_says_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nid = "hub-cal"\ndata_dir = "{data}"\n')
    path = data / WATER_CALIBRATION_FILE
    water_rows(pump_config(ROWS, path)).score(pump_seconds(range(ROWS + 20), seed=1))
    assert main(["-c", str(config), "models", "recalibrate"]) == 0
    out = capsys.readouterr().out
    assert f"removed {path}" in out
    assert "calibrates afresh" in out
    assert not path.exists()
    assert json.loads(recalibrate_marker(path).read_text())["requested_at"] > 0
    assert main(["-c", str(config), "models", "recalibrate"]) == 0  # nothing kept: still asked
    assert "no calibration kept" in capsys.readouterr().out
    assert recalibrate_marker(path).exists()


def test_models_recalibrate_that_cannot_leave_its_marker_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert recalibrate(blocker / WATER_CALIBRATION_FILE) == 1
    assert "cannot write" in capsys.readouterr().err


async def test_recalibrate_while_the_daemon_runs_then_a_restart_starts_afresh(
    tmp_path: Path,
) -> None:
    """The reviewer's case: the hourly save keeps the stretch, the homeowner runs `models
    recalibrate`, the service stops (systemctl restart): the next start begins afresh."""
    path = tmp_path / WATER_CALIBRATION_FILE
    config = pump_config(400, path, calibrate_s=86_400.0)
    rng = np.random.default_rng(0)
    bus, clock = Bus(), Clock()
    service = AnomalyService(
        bus=bus, clock=clock, water=config, state_file=tmp_path / "streams.json", pace_s=0.0
    )
    out: Subscription[AnomalyScore] = water_scores(bus)
    async with running(service):
        for second in range(300):
            for r in pump_readings(rng, second, 9.0):
                bus.publish(r)
        await take(out, 300)
        clock.t += 3700.0  # an hour later: the hourly save, with the next batch
        for r in pump_readings(rng, 300, 9.0):
            bus.publish(r)
        await take(out, 1)
        assert "stretch" in json.loads(path.read_text())
        recalibrate(path)
    assert not path.exists()  # the save at stop wrote nothing
    status = service.water_status()
    assert status is not None
    assert status["rows"] == 0
    again = AnomalyService(bus=Bus(), clock=Clock(), water=config)
    async with running(again):
        status = again.water_status()
    assert status is not None
    assert (status["restored"], status["rows"]) == (False, 0)
