"""The water-system detector: calibrate on a stretch of normal operation, then score departures.

Inputs are the eight columns of a pump loop (`COLUMNS`, SKAB's names; in the daemon they are the
measurements of `DAEMON_MEASUREMENTS`). Each row goes through `models.features.SystemFeatures`
(a causal 5-row mean; temperatures as their change over 30 rows, since a loop warming up is
normal). The first `calibrate_rows` rows are the calibration stretch (in the daemon: at least
that many, over at least `calibrate_s` seconds, so that the stretch covers the loop's warm-up and
daily rhythm; rows of a long stretch are thinned evenly to at most `MAX_STRETCH_ROWS`): each
column's mean and spread, and the covariance of the standardised columns (with a small ridge), are
fitted on them;
the precision matrix goes to the ONNX graph, which computes Hotelling's T² of each standardised row.
The operating point is the largest T² seen during calibration times `margin`; a row's ratio
`T² / that` is averaged over the last `smooth_rows` rows, and the score is `ratio / (1 + ratio)`,
so the operating threshold 0.5 means "further out than anything in the calibration stretch".

A column missing from more than a tenth of the calibration stretch (a loop without vibration
sensors) is left out; a value missing later (NaN, infinite, or beyond `features.MAX_MAGNITUDE`)
is carried from the column's last one. A row older than the one before it is refused (`None`).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.atomic_file import is_json_number, json_number
from models import matrix
from models.features import MAX_MAGNITUDE_TEXT, SystemFeatures, usable
from models.ort_capi import Tensor
from models.runtime import LoadedModel

COLUMNS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
#: What each column is in the hub's vocabulary (`hub.measurements.Measurement` values).
DAEMON_MEASUREMENTS = (
    "vibration",  # pump accelerometer 1 (RMS); optional
    "vibration",  # pump accelerometer 2 (RMS); optional
    "current",  # pump motor current, A
    "pressure",  # loop pressure, bar
    "temperature",  # pump motor temperature, °C
    "temperature",  # fluid temperature (thermocouple), °C
    "voltage",  # pump motor voltage, V
    "flow",  # volume flow, L/min
)


@dataclass(frozen=True, slots=True)
class WaterParams:
    calibrate_rows: int
    rate_columns: tuple[int, ...]
    ridge: float
    margin: float
    smooth_rows: int
    threshold: float

    @classmethod
    def from_card(cls, data: dict[str, Any]) -> WaterParams:
        return cls(
            calibrate_rows=int(data["calibrate_rows"]),
            rate_columns=tuple(int(i) for i in data["rate_columns"]),
            ridge=float(data["ridge"]),
            margin=float(data["margin"]),
            smooth_rows=int(data["smooth_rows"]),
            threshold=float(data["threshold"]),
        )


@dataclass(slots=True)
class Calibration:
    """What the calibration stretch fitted: kept by the daemon across restarts (`to_json`)."""

    mean: list[float]  # of each used column
    spread: list[float]
    used: list[bool]  # which of `COLUMNS` are fitted
    precision: Tensor  # (k, k), k the number of used columns
    t2_limit: float

    @property
    def columns(self) -> list[int]:
        return [j for j, u in enumerate(self.used) if u]

    def to_json(self) -> dict[str, Any]:
        k = len(self.mean)
        p = self.precision.values
        return {
            "used": list(self.used),
            "mean": list(self.mean),
            "spread": list(self.spread),
            "precision": [p[i * k : (i + 1) * k].tolist() for i in range(k)],
            "t2_limit": self.t2_limit,
        }

    @classmethod
    def from_json(cls, data: Any) -> Calibration:
        """The calibration `to_json` wrote; `ValueError` saying what is wrong with anything else."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = {"used", "mean", "spread", "precision", "t2_limit"} - data.keys()
        if missing:
            raise ValueError(f"no {', '.join(repr(m) for m in sorted(missing))}")
        used, mean, spread = data["used"], data["mean"], data["spread"]
        precision, limit = data["precision"], data["t2_limit"]
        if not (isinstance(used, list) and all(isinstance(u, bool) for u in used)):
            raise ValueError("'used' has a value of the wrong type (true or false)")
        k = sum(used)
        if len(used) != len(COLUMNS) or k == 0:
            raise ValueError(f"'used' must name which of the {len(COLUMNS)} columns are fitted")
        vectors = (mean, spread, *(precision if isinstance(precision, list) else [precision]))
        numbers = [*vectors, [limit]]
        if not all(isinstance(v, list) for v in numbers) or not all(
            is_json_number(x) for v in numbers for x in v
        ):
            raise ValueError("a value of the wrong type (a number, or a list of numbers)")
        if len(precision) != k or not all(len(v) == k for v in vectors):
            raise ValueError(f"'mean', 'spread' and 'precision' must fit {k} used columns")
        if not all(_is_number(x) for v in numbers for x in v) or min(spread) <= 0 or limit <= 0:
            raise ValueError("non-finite or non-positive values")
        precision32 = array("f", [float(x) for row in precision for x in row])
        if not all(math.isfinite(x) for x in precision32):
            raise ValueError("non-finite or non-positive values ('precision' beyond float32)")
        return cls(
            [float(x) for x in mean],
            [float(x) for x in spread],
            list(used),
            Tensor(precision32, (k, k)),
            float(limit),
        )


def _is_number(v: object) -> bool:
    """A finite number (read from JSON: it may be NaN, infinite, or an integer too large)."""
    number = json_number(v)
    return number is not None and math.isfinite(number)


#: The most rows a calibration stretch keeps: a longer stretch keeps every 2nd, 4th, ... row, so
#: that what is kept spans the whole stretch evenly (about 1 MB at most).
MAX_STRETCH_ROWS = 4096


@dataclass(slots=True)
class Stretch:
    """The calibration stretch while it is taken: rows thinned evenly to `MAX_STRETCH_ROWS`."""

    rows: list[list[float]] = field(default_factory=list)
    seen: int = 0  # rows taken into the stretch, kept or thinned out
    stride: int = 1  # every `stride`-th row taken is kept
    first_at: float = 0.0  # the first row's time (0 before it)
    last_at: float = 0.0  # the latest row's time

    @property
    def seconds(self) -> float:
        return self.last_at - self.first_at

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [[v if math.isfinite(v) else None for v in row] for row in self.rows],
            "seen": self.seen,
            "stride": self.stride,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    @classmethod
    def from_json(cls, data: Any, columns: int) -> Stretch:
        """The stretch `to_json` wrote; `ValueError` saying what is wrong with anything else."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = {"rows", "seen", "stride", "first_at", "last_at"} - data.keys()
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))}")
        rows, seen, stride = data["rows"], data["seen"], data["stride"]
        first, last = data["first_at"], data["last_at"]
        if not (
            isinstance(rows, list)
            and all(isinstance(r, list) and len(r) == columns for r in rows)
            and all(v is None or (_is_number(v) and usable(v)) for r in rows for v in r)
        ):
            raise ValueError(
                f"'rows' must be rows of {columns} numbers or nulls (within ±{MAX_MAGNITUDE_TEXT})"
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (seen, stride)):
            raise ValueError("'seen' and 'stride' must be integers")
        if not (_is_number(first) and _is_number(last) and first <= last):
            raise ValueError("'first_at' and 'last_at' must be times in order")
        if (
            stride < 1
            or stride & (stride - 1)
            or len(rows) >= MAX_STRETCH_ROWS
            or len(rows) != -(-seen // stride)  # the rows `add` keeps of `seen`
        ):
            raise ValueError("'seen' and 'stride' do not fit the rows kept")
        kept = [[math.nan if v is None else float(v) for v in r] for r in rows]
        return cls(kept, seen, stride, float(first), float(last))

    def add(self, at: float, row: list[float]) -> None:
        if not self.seen:
            self.first_at = at
        self.last_at = at
        if self.seen % self.stride == 0:
            self.rows.append(row)
            if len(self.rows) >= MAX_STRETCH_ROWS:
                del self.rows[1::2]
                self.stride *= 2
        self.seen += 1


@dataclass(slots=True)
class SystemState:
    """Everything kept for one system: features, the calibration stretch until fitted, the fit."""

    features: SystemFeatures
    calibrate_rows: int
    calibrate_s: float = 0.0
    stretch: Stretch = field(default_factory=Stretch)
    calibration: Calibration | None = None
    ratios: deque[float] = field(default_factory=deque)
    refused: int = 0

    @property
    def stretch_complete(self) -> bool:
        s = self.stretch
        return s.seen >= self.calibrate_rows and s.seconds >= self.calibrate_s


class WaterDetector:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.params = WaterParams.from_card(model.card["streaming"])
        self.threshold = self.params.threshold
        self.columns = len(COLUMNS)

    def new_state(self, calibrate_rows: int | None = None, calibrate_s: float = 0.0) -> SystemState:
        """A system's fresh state: its calibration stretch is its first `calibrate_rows` rows (the
        card's default when `None`), and lasts at least `calibrate_s` seconds."""
        rows = self.params.calibrate_rows if calibrate_rows is None else calibrate_rows
        features = SystemFeatures(self.columns, self.params.rate_columns)
        return SystemState(features, max(rows, 2), calibrate_s)

    def score_table(
        self, ts: Sequence[float], values: Sequence[Sequence[float]], calibrate_rows: int | None
    ) -> list[float]:
        """Scores of a whole table (0 for a row refused by `score_rows`)."""
        out = self.score_table_rows(ts, values, calibrate_rows)
        return [0.0 if s is None else s for s in out]

    def score_table_rows(
        self, ts: Sequence[float], values: Sequence[Sequence[float]], calibrate_rows: int | None
    ) -> list[float | None]:
        """`score_rows` of a whole table with a fresh state (`None`: the row was refused)."""
        width = {len(row) for row in values}
        if width - {self.columns}:
            raise ValueError(f"model water_system takes {self.columns} columns, got {max(width)}")
        state = self.new_state(calibrate_rows)
        return self.score_rows(state, ts, values)

    def score_rows(
        self, state: SystemState, ts: Sequence[float], rows: Sequence[Sequence[float]]
    ) -> list[float | None]:
        """Scores of rows in order (0 during calibration; `None` for an out-of-order row)."""
        out: list[float | None] = [None] * len(rows)
        pending: list[int] = []
        feats: list[list[float]] = []
        for i, (t, row) in enumerate(zip(ts, rows, strict=True)):
            if not state.features.accepts(t):
                state.refused += 1
                continue
            f = state.features.step(t, row)
            if state.calibration is None:
                state.stretch.add(t, f)
                if state.stretch_complete:
                    state.calibration = self._fit(state.stretch.rows)
                    state.stretch = Stretch()
                out[i] = 0.0
            else:
                pending.append(i)
                feats.append(f)
        if pending:
            cal = state.calibration
            assert cal is not None
            t2 = self._t2(cal, feats)
            ratios = state.ratios
            n = self.params.smooth_rows
            for i, v in zip(pending, (v / cal.t2_limit for v in t2), strict=True):
                if len(ratios) == n:
                    ratios.popleft()
                ratios.append(v)
                r = sum(ratios) / len(ratios)
                out[i] = r / (1.0 + r)
        return out

    def _t2(self, cal: Calibration, feats: Sequence[Sequence[float]]) -> list[float]:
        """Hotelling's T² of each row (the ONNX graph), standardised by `cal`."""
        columns = cal.columns
        z = [_standardised(row, columns, cal.mean, cal.spread) for row in feats]
        return self.model.run(
            {"z": Tensor.of_rows(z, len(columns)), "precision": cal.precision}
        ).column(0)

    def _fit(self, stretch: Sequence[Sequence[float]]) -> Calibration:
        # A column that reported for most of the stretch is used (a sensor that starts a few
        # rows late is fine); its missing values count as its mean.
        columns = [[row[j] for row in stretch] for j in range(self.columns)]
        used = [sum(map(math.isfinite, c)) / len(c) >= 0.9 for c in columns]
        if not any(used):
            used = [True] * self.columns  # nothing known: every row scores 0 (NaN standardise to 0)
        picked = [j for j, u in enumerate(used) if u]
        stats = [matrix.mean_and_std(columns[j]) for j in picked]
        # An all-NaN column: mean 0, spread 1e-6.
        mean = [m if math.isfinite(m) else 0.0 for m, _ in stats]
        spread = [(s if math.isfinite(s) else 0.0) + 1e-6 for _, s in stats]
        z = [_standardised(row, picked, mean, spread) for row in stretch]
        cov = matrix.covariance(list(zip(*z, strict=True)))
        for i in range(len(picked)):
            cov[i][i] += self.params.ridge
        precision = Tensor.of_rows(matrix.inverse(cov), len(picked))
        fitted = Calibration(mean, spread, used, precision, 1.0)
        limit = max(self._t2(fitted, stretch)) * self.params.margin
        fitted.t2_limit = max(limit, 1e-9) if math.isfinite(limit) else 1.0
        return fitted


def _standardised(
    row: Sequence[float], columns: Sequence[int], mean: Sequence[float], spread: Sequence[float]
) -> list[float]:
    """A row's `columns` in units of their spread (NaN as 0, infinities as ±1e6)."""
    out = []
    for j, m, s in zip(columns, mean, spread, strict=True):
        z = (row[j] - m) / s
        out.append(z if math.isfinite(z) else 0.0 if math.isnan(z) else math.copysign(1e6, z))
    return out
