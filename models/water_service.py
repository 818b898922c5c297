"""A home's water system as the daemon sees it: readings of several devices assembled into rows.

The water system model takes rows of eight columns (`models.water.COLUMNS`). In the hub they come
from separate devices, each with its own `Reading`s; `WaterSystemConfig.columns` names, for each
column, the `(device_id, measurement)` that feeds it (or `None`: that loop has no such sensor, and
the column is left out at calibration). A row is taken each time a mapped reading arrives at least
`row_interval_s` after the previous row, holding every column's latest value (NaN until a column
has reported), so the row rate follows the sensors, with no timer. State is one row and the
detector's bounded state; it is only touched from the scoring thread.

**The calibration stretch lasts** at least `calibrate_s` (the daemon: a day) and `calibrate_rows`
rows: a loop's first minutes are its warm-up, and a stretch that ends there calls the rest of a
normal day anomalous (SKAB's anomaly-free recording: 97.6 % of rows flagged after 400 rows of
calibration, 1.6 % after 2,000; `python -m bench.anomaly`).

**The calibration is kept** in `calibration_file` (the daemon: `<data_dir>/water_system.calibration.json`,
written atomically once the stretch is fitted), so a restart, or a power cut during a leak,
does not recalibrate on whatever the loop is doing then. A stretch still being taken is kept
there too whenever `keep_progress` is called (the service: with the streams' state, hourly and
at stop), so a restart resumes it instead of starting the day again. Either is used again only
when it was taken by the same model file (sha256) on the same column mapping; otherwise, or when
it is unreadable, the hub says why (`WaterRows.calibration_note`, logged at WARNING) and
calibrates afresh. A fit that could not be written (a full disk) is written at the next
`keep_progress`, so the file never goes on holding the stretch it was fitted on.

**Recalibration** (after a pump or sensor is replaced): `homeguard-hub models recalibrate` writes
a marker beside the file (`hub.config.recalibrate_marker`) and removes the file. The hub
never writes the marker and the command never writes the calibration, so neither can undo the
other: whenever the hub would write the file (a fit, hourly, at stop) and finds the marker, it
writes nothing, forgets its calibration or stretch, removes the marker and calibrates afresh on
the rows that follow; at start, a marker means the same (any file beside it is removed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.atomic_file import json_number, read_json_object, write_json
from hub.clock import duration
from hub.config import recalibrate_marker
from hub.events import Reading
from hub.measurements import Measurement
from models.water import COLUMNS, Calibration, Stretch, WaterDetector

_log = logging.getLogger(__name__)

#: The file's layout; a file of another format is not used (and is replaced once recalibrated).
CALIBRATION_FORMAT = 1

Column = tuple[str, Measurement] | None


@dataclass(frozen=True, slots=True)
class WaterSystemConfig:
    """Which device feeds each column of the water system model (`None`: not fitted).

    `columns` follows `models.water.COLUMNS` / `DAEMON_MEASUREMENTS`: vibration 1, vibration 2,
    pump current, loop pressure, motor temperature, fluid temperature, pump voltage, flow.
    `calibrate_rows`: the first rows are the calibration stretch (`None`: the card's default, 400),
    and it lasts at least `calibrate_s` seconds.
    `name` is the `stream` of its `AnomalyScore`s. `calibration_file`: where the fitted
    calibration is kept across restarts (`None`: not kept).
    """

    columns: tuple[Column, ...]
    row_interval_s: float = 1.0
    calibrate_rows: int | None = None
    calibrate_s: float = 0.0
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
        self._state = detector.new_state(config.calibrate_rows, config.calibrate_s)
        #: Why a kept calibration was not used, or could not be kept (None: nothing to say).
        self.calibration_note: str | None = None
        self.restored = False
        #: Whether the calibration file holds the fitted calibration (False before the fit).
        self._kept = False
        self._calibrated_at = 0.0
        if not self._recalibration_asked():
            self._restore()

    @property
    def calibrated(self) -> bool:
        return self._state.calibration is not None

    def calibration_progress(self) -> dict[str, float]:
        """The calibration stretch's rows and seconds, taken so far and needed (all of them once
        calibrated)."""
        state = self._state
        needed = {"rows_needed": state.calibrate_rows, "seconds_needed": state.calibrate_s}
        if state.calibration is not None:
            return {"rows": state.calibrate_rows, "seconds": state.calibrate_s, **needed}
        return {"rows": state.stretch.seen, "seconds": state.stretch.seconds, **needed}

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
            self.restored = False  # fitted now (if on a stretch resumed from an earlier run)
            self._calibrated_at = times[-1]
            self._keep()
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
        if path is None:
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
                    f"{path} was taken with other {', '.join(what[k] for k in changed)}: "
                    "calibrating afresh"
                )
                return
            if "stretch" in data and "calibration" not in data:  # a stretch still being taken
                self._state.stretch = Stretch.from_json(data["stretch"], len(COLUMNS))
            else:
                calibrated_at = json_number(data.get("calibrated_at", 0.0))
                if calibrated_at is None or not math.isfinite(calibrated_at):
                    raise ValueError("'calibrated_at' is not a time")
                self._state.calibration = Calibration.from_json(data.get("calibration"))
                self._calibrated_at = calibrated_at
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            self._note(f"{path} is unusable ({err}): calibrating afresh")
            return
        self.restored = True
        if self.calibrated:
            self._kept = True
            _log.info(
                "water system: calibration of %s restored from %s", data.get("calibrated_at"), path
            )
        else:
            stretch = self._state.stretch
            _log.info(
                "water system: calibration stretch resumed from %s (%d rows, %s)",
                path,
                stretch.seen,
                duration(stretch.seconds),
            )

    def _keep(self) -> None:
        calibration = self._state.calibration
        if calibration is not None and self._write(
            {"calibrated_at": self._calibrated_at, "calibration": calibration.to_json()}
        ):
            self._kept = True
            _log.info("water system: calibrated; kept in %s", self.config.calibration_file)

    def keep_progress(self) -> None:
        """Keep the calibration stretch taken so far, or the calibration if its fit could not be
        written then (the service: hourly and at stop); a recalibration asked meanwhile is done
        instead."""
        stretch = self._state.stretch
        if self._state.calibration is not None and not self._kept:
            self._keep()  # `_write` looks for the marker
        elif self._state.calibration is None and stretch.seen:
            self._write({"stretch": stretch.to_json()})
        else:
            self._recalibration_asked()  # nothing to write; a recalibration asked is still done

    def _recalibration_asked(self) -> bool:
        """Whether `models recalibrate` left its marker; if so, start afresh: forget the
        calibration or stretch, remove the file and the marker (the caller writes nothing)."""
        path = self.config.calibration_file
        if path is None:
            return False
        marker = recalibrate_marker(path)
        try:
            if not marker.exists():
                return False
        except OSError as err:  # said; looked for again at the next write
            self._note(f"cannot look for `models recalibrate`'s marker {marker.name} ({err})")
            return False
        self._state = self.detector.new_state(self.config.calibrate_rows, self.config.calibrate_s)
        self.restored = self._kept = False
        try:
            path.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        except OSError as err:  # said; the marker is seen again at the next write
            self._note(f"recalibrating as `models recalibrate` asked, but {err}")
        else:
            self.calibration_note = (
                "recalibrating as `homeguard-hub models recalibrate` asked: the calibration "
                "was forgotten and the stretch starts afresh"
            )
            _log.info("water system: %s", self.calibration_note)
        return True

    def _write(self, content: dict[str, Any]) -> bool:
        """Whether `content` is now kept in the calibration file (never when a recalibration
        was asked: the hub then starts afresh instead)."""
        path = self.config.calibration_file
        if path is None or self._recalibration_asked():
            return False
        try:
            write_json(path, {**self._identity(), **content})
        except OSError as err:  # a full disk: the hub scores on; kept again next time
            self._note(f"cannot keep the calibration in {path} ({err})")
            return False
        self.calibration_note = None
        return True
