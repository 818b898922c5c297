"""Score a whole table the way the daemon scores a stream: `score_table` and `list_models`.

Causal by construction: the detectors are streaming (each row's score comes from that row and the
earlier ones, through the same state the daemon keeps), and the table is fed to them in order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models import runtime
from models.csv_input import TIMESTAMP_FORMATS, Table
from models.csv_input import read_table as read_csv
from models.features import MAX_MAGNITUDE, Refusal, refusal
from models.runtime import ModelError
from models.univariate import StreamState, UnivariateDetector
from models.water import WaterDetector

__all__ = [
    "ModelError",
    "Refusal",
    "Refused",
    "ScoreTable",
    "Table",
    "check_model",
    "detector",
    "list_models",
    "model_card",
    "read_csv",
    "score_table",
]

Detector = UnivariateDetector | WaterDetector


@dataclass(frozen=True, slots=True)
class Refused:
    """Rows not scored (they score 0) for one reason: how many, and the index of the first."""

    reason: Refusal
    rows: int
    first: int

    @property
    def hint(self) -> str:
        """What to do about it ('' when the reason says it all)."""
        return _HINTS.get(self.reason, "")


_HINTS = {
    Refusal.TIME_UNREADABLE: f"accepted: {TIMESTAMP_FORMATS}",
    Refusal.EARLIER: "the scorer is causal: sort the file by time",
}


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """Per-row scores in [0, 1], the operating decision, and the threshold behind it.

    `scores` are the detector's event scores (after its suppression of repeats: what NAB-style
    scoring and `models score` use); `levels` the scores before suppression (what the daemon
    publishes with `publish="level"`); `sustained` the sustained-deviation score (`models.sustained`
    with the stuck channel: what the daemon publishes by default, for the anomaly rule). The water
    system model does not suppress and has no separate sustained score: all three are equal.
    `refused`: the rows the detector did not take in, by reason (in the order of `Refusal`);
    `ignored_values`: values of the water system model's rows beyond `MAX_MAGNITUDE`, read as
    missing (its rows are refused for their time only).
    """

    scores: npt.NDArray[np.float64]
    is_anomaly: npt.NDArray[np.bool_]
    threshold: float
    levels: npt.NDArray[np.float64]
    sustained: npt.NDArray[np.float64]
    refused: tuple[Refused, ...] = ()
    ignored_values: int = 0

    @property
    def scored(self) -> int:
        """Rows taken in by the detector (the others score 0 and are counted in `refused`)."""
        return int(self.scores.shape[0]) - sum(r.rows for r in self.refused)


def list_models() -> list[str]:
    """The shipped models (`univariate` for any one stream, `water_system` for SKAB's 8 columns)."""
    return runtime.available()


def model_card(model: str) -> dict[str, Any]:
    """The card of `model`, as written beside it (not verified: see `check_model`)."""
    return runtime.read_card(model)


def check_model(model: str) -> str | None:
    """None when `model` loads and passes its checksum, else why it is refused."""
    try:
        detector(model)
    except ModelError as err:
        return str(err)
    return None


@functools.cache
def detector(model: str) -> Detector:
    """The verified, loaded detector for `model` (loaded once per process)."""
    loaded = runtime.load(model)
    kind = loaded.card.get("detector", model)
    if kind == "water_system":
        return WaterDetector(loaded)
    return UnivariateDetector(loaded)


def score_table(
    model: str,
    timestamps: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    calibrate_rows: int | None = None,
) -> ScoreTable:
    """Score `values` (n, k) at `timestamps` (n,) causally with `model`.

    `calibrate_rows`: the first rows are the calibration stretch (the water system model fits its
    normal ranges on them; its card's default applies when `None`). Rows of the calibration stretch
    score 0. NaN values are allowed: a univariate reading that is NaN, infinite, beyond
    `features.MAX_MAGNITUDE`, or older than the stream's last (or at a NaN time) scores 0 and
    changes nothing; a multivariate row carries a missing value forward (and is refused for its
    time only). Refused rows are counted in `refused`.
    Raises `runtime.ModelError` when the model is missing or fails its checksum, `ValueError` on
    shapes the model does not take or a negative `calibrate_rows`.
    """
    if calibrate_rows is not None and calibrate_rows < 0:
        raise ValueError(f"calibrate_rows must be 0 or more, got {calibrate_rows}")
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals.reshape(-1, 1)
    if vals.shape[0] != ts.shape[0]:
        raise ValueError(f"{ts.shape[0]} timestamps but {vals.shape[0]} rows of values")
    det = detector(model)
    if isinstance(det, WaterDetector):
        rows = det.score_table_rows(ts.tolist(), vals.tolist(), calibrate_rows)
        scores = np.asarray([0.0 if s is None else s for s in rows], dtype=np.float64)
        levels = sustained = scores
        refused = _refused(ts, None, [s is not None for s in rows])
        with np.errstate(invalid="ignore"):
            ignored = int((np.isfinite(vals) & (np.abs(vals) > MAX_MAGNITUDE)).sum())
    else:
        if vals.shape[1] != 1:
            raise ValueError(f"model {model} scores one column, got {vals.shape[1]}")
        state = StreamState()
        out = det.score_batch(
            list(zip([state] * ts.size, ts.tolist(), vals[:, 0].tolist(), strict=True))
        )
        refused = _refused(ts, vals[:, 0], [s is not None for s in out])
        ignored = 0
        cols = np.asarray([(0.0, 0.0, 0.0) if s is None else s for s in out], dtype=np.float64)
        cols = cols.reshape(-1, 3)
        if calibrate_rows:
            cols[:calibrate_rows] = 0.0
        levels, scores, sustained = cols[:, 0], cols[:, 1], cols[:, 2]
    return ScoreTable(
        scores, scores >= det.threshold, det.threshold, levels, sustained, refused, ignored
    )


def _refused(
    ts: npt.NDArray[np.float64], values: npt.NDArray[np.float64] | None, taken: list[bool]
) -> tuple[Refused, ...]:
    """Why each row the detector did not take (`taken[i]` false) was refused, counted."""
    rows: dict[Refusal, int] = {}
    first: dict[Refusal, int] = {}
    last_t = -math.inf
    xs = None if values is None else values.tolist()
    for i, (t, ok) in enumerate(zip(ts.tolist(), taken, strict=True)):
        if ok:
            last_t = t
            continue
        why = refusal(t, None if xs is None else xs[i], last_t)
        if why is None:  # cannot happen: the detectors' `accepts` is `refusal`
            raise AssertionError(f"row {i} refused for no reason")
        rows[why] = rows.get(why, 0) + 1
        first.setdefault(why, i)
    return tuple(Refused(why, rows[why], first[why]) for why in Refusal if why in rows)
