"""A home's water system as the daemon sees it: readings of several devices assembled into rows.

The water system model takes rows of eight columns (`models.water.COLUMNS`). In the hub they come
from separate devices, each with its own `Reading`s; `WaterSystemConfig.columns` names, for each
column, the `(device_id, measurement)` that feeds it (or `None`: that loop has no such sensor, and
the column is left out at calibration). A row is taken each time a mapped reading arrives at least
`row_interval_s` after the previous row, holding every column's latest value (NaN until a column
has reported), so the row rate follows the sensors, with no timer. State is one row and the
detector's bounded state; it is only touched from the scoring thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hub.events import Reading
from hub.measurements import Measurement
from models.water import COLUMNS, WaterDetector

Column = tuple[str, Measurement] | None


@dataclass(frozen=True, slots=True)
class WaterSystemConfig:
    """Which device feeds each column of the water system model (`None`: not fitted).

    `columns` follows `models.water.COLUMNS` / `DAEMON_MEASUREMENTS`: vibration 1, vibration 2,
    pump current, loop pressure, motor temperature, fluid temperature, pump voltage, flow.
    `calibrate_rows`: the first rows are the calibration stretch (`None`: the card's default, 400).
    `name` is the `stream` of its `AnomalyScore`s.
    """

    columns: tuple[Column, ...]
    row_interval_s: float = 1.0
    calibrate_rows: int | None = None
    name: str = "water_system"

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
        scores = self.detector.score_rows(self._state, times, rows)
        return [(t, s) for t, s in zip(times, scores, strict=True) if s is not None]
