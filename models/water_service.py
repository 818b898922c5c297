"""A home's water system as the daemon sees it: readings of several devices assembled into rows.

The water system model takes rows of eight columns (`models.water.COLUMNS`). In the hub they come
from separate devices, each with its own `Reading`s; `WaterSystemConfig.columns` names, for each
column, the `(device_id, measurement)` that feeds it (or `None`: that loop has no such sensor, and
the column is left out at calibration). A row is taken each time a mapped reading arrives at least
`row_interval_s` after the previous row, holding every column's latest value (NaN until a column
has reported), so the row rate follows the sensors, with no timer. State is one row and the
detector's bounded state; it is only touched from the scoring thread.

**The calibration is kept** in `calibration_file` (the daemon: `<data_dir>/water_system.calibration.json`,
written atomically once the stretch is fitted), so a restart, or a power cut during a leak,
does not recalibrate on whatever the loop is doing then. It is used again only when it was
fitted by the same model file (sha256) on the same column mapping; otherwise, or when it is
unreadable, the hub says why (`WaterRows.calibration_note`, logged at WARNING) and calibrates
afresh. `homeguard-hub models recalibrate` removes it (after a pump or sensor is replaced).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.atomic_file import read_json_object, write_json
from hub.events import Reading
from hub.measurements import Measurement
from models.water import COLUMNS, Calibration, WaterDetector

_log = logging.getLogger(__name__)

#: The file's layout; a file of another format is not used (and is replaced once recalibrated).
CALIBRATION_FORMAT = 1

Column = tuple[str, Measurement] | None


@dataclass(frozen=True, slots=True)
class WaterSystemConfig:
    """Which device feeds each column of the water system model (`None`: not fitted).

    `columns` follows `models.water.COLUMNS` / `DAEMON_MEASUREMENTS`: vibration 1, vibration 2,
    pump current, loop pressure, motor temperature, fluid temperature, pump voltage, flow.
    `calibrate_rows`: the first rows are the calibration stretch (`None`: the card's default, 400).
    `name` is the `stream` of its `AnomalyScore`s. `calibration_file`: where the fitted
    calibration is kept across restarts (`None`: not kept).
    """

    columns: tuple[Column, ...]
    row_interval_s: float = 1.0
    calibrate_rows: int | None = None
    name: str = "water_system"
    calibration_file: Path | None = None

    def __post_init__(self) -> None:
        if len(self.columns) != len(COLUMNS):
            raise ValueError(f"a water system has {len(COLUMNS)} columns, got {len(self.columns)}")


class WaterRows:
    def __init__(self, config: WaterSystemConfig, detector: WaterDetector) -> None:
        self.config = config
        self.detector = detector
        self._index = {c: i for i, c in enumerate(config.columns) if c is not None}
        self._last = [math.nan] * len(COLUMNS)
        self._last_row_at = -math.inf
        self._state = detector.new_state(config.calibrate_rows)
        #: Why a kept calibration was not used, or could not be kept (None: nothing to say).
        self.calibration_note: str | None = None
        self.restored = False
        self._restore()

    @property
    def calibrated(self) -> bool:
        return self._state.calibration is not None

    @property
    def calibration_rows(self) -> tuple[int, int]:
        """(rows taken, rows needed) of the calibration stretch."""
        state = self._state
        if state.calibration is not None:
            return state.calibrate_rows, state.calibrate_rows
        return len(state.stretch), state.calibrate_rows

    def wants(self, reading: Reading) -> bool:
        return (reading.device_id, reading.measurement) in self._index

    def score(self, readings: Sequence[Reading]) -> list[tuple[float, float]]:
        """`(at, score)` of each row the readings complete (none during a burst shorter than the
        row interval); scores of the calibration stretch are 0."""
        times: list[float] = []
        rows: list[list[float]] = []
        for r in readings:
            i = self._index.get((r.device_id, r.measurement))
            if i is None or isinstance(r.value, bool | str):
                continue
            self._last[i] = float(r.value)
            if r.at - self._last_row_at >= self.config.row_interval_s:
                self._last_row_at = r.at
                times.append(r.at)
                rows.append(list(self._last))
        if not rows:
            return []
        was_calibrated = self.calibrated
        scores = self.detector.score_rows(self._state, times, rows)
        if not was_calibrated and self.calibrated:
            self._keep(times[-1])
        return [(t, s) for t, s in zip(times, scores, strict=True) if s is not None]

    def _identity(self) -> dict[str, Any]:
        """What a kept calibration must have been fitted with to be used again."""
        model = self.detector.model
        return {
            "format": CALIBRATION_FORMAT,
            "model_sha256": str(model.card["sha256"]),
            "columns": [None if c is None else [c[0], str(c[1])] for c in self.config.columns],
        }

    def _note(self, note: str) -> None:
        self.calibration_note = note
        _log.warning("water system: %s", note)

    def _restore(self) -> None:
        path = self.config.calibration_file
        if path is None or not path.exists():
            return
        try:
            data = read_json_object(path)
            identity = self._identity()
            changed = [k for k, v in identity.items() if data.get(k) != v]
            if changed:
                what = {
                    "format": "its format",
                    "model_sha256": "the model",
                    "columns": "the sensors",
                }
                self._note(
                    f"{path} was fitted with other {', '.join(what[k] for k in changed)}: "
                    "calibrating afresh"
                )
                return
            calibration = Calibration.from_json(data.get("calibration"))
        except (OSError, ValueError) as err:
            self._note(f"{path} is unusable ({err}): calibrating afresh")
            return
        self._state.calibration = calibration
        self._state.stretch = []
        self.restored = True
        _log.info(
            "water system: calibration of %s restored from %s", data.get("calibrated_at"), path
        )

    def _keep(self, at: float) -> None:
        path = self.config.calibration_file
        calibration = self._state.calibration
        if path is None or calibration is None:
            return
        body = {**self._identity(), "calibrated_at": at, "calibration": calibration.to_json()}
        try:
            write_json(path, body)
        except OSError as err:  # a full disk: the hub scores on, it recalibrates after a restart
            self._note(f"cannot keep the calibration in {path} ({err})")
            return
        self.calibration_note = None
        _log.info("water system: calibrated; kept in %s", path)
