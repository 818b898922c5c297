"""Metrics of the Skoltech Anomaly Benchmark (SKAB) for binary predictions, from its published
definitions (the SKAB README and paper, and the evaluation module of ``waico/SKAB``).

* **Point-wise** (`binary_metrics`): TP, TN, FP and FN are summed over all the scored files first;
  then ``F1 = TP / (TP + (FP + FN) / 2)``, the false alarm rate ``FAR = FP / (FP + TN)`` and the
  missed alarm rate ``MAR = FN / (FN + TP)``. Truth is the ``anomaly`` column.
* **NAB-style** (`nab_scores`): the truth is the ``changepoint`` column; the predicted change
  points are where the binary prediction changes (``|p[i] - p[i-1]|``, and ``p[0]`` for the first
  row). Each true change point ``c`` opens a detection window ``[c, c + 60 s]`` to its RIGHT
  (inclusive); when a window reaches into the next one, the next one starts where the previous
  ends. Per window, the first predicted change point inside earns
  ``y = (A_TP + A_FP)/2 * (1 - tanh(x)/tanh(pi/2)) - A_FP`` at
  ``x = -pi/2 + pi * k / 999``, ``k = min(int((t - start) / (end - start) * 1000), 999)``:
  ``A_TP`` at the window's start, ``-A_FP`` at its end. A window without one costs ``A_FN``; every
  predicted change point outside all windows costs ``A_FP``; further ones inside a window cost
  nothing. Sums run over all files, then ``100 * (S - S_null) / (S_perfect - S_null)`` with
  ``S_null = -A_FN * windows`` and ``S_perfect = A_TP * windows``. The profiles are NAB's
  (`bench.anomaly.nab.PROFILES`).

Files are read with `load_skab_file` (``;``-separated, ``datetime`` first, the eight sensor columns,
then ``anomaly`` and ``changepoint``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.anomaly.data import parse_timestamps
from bench.anomaly.nab import PROFILES, Profile
from models.water import COLUMNS

__all__ = [
    "SENSOR_COLUMNS",
    "BinaryMetrics",
    "SkabFile",
    "binary_metrics",
    "load_skab",
    "load_skab_file",
    "nab_scores",
    "predicted_changepoints",
]


Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

#: SKAB's eight sensor columns, in the order the water-system model takes them.
SENSOR_COLUMNS = COLUMNS
WINDOW_SECONDS = 60.0
_STEPS = 1000  # resolution of SKAB's scoring curve


@dataclass(frozen=True)
class SkabFile:
    """One experiment: `values` has one column per `SENSOR_COLUMNS` entry."""

    name: str
    timestamps: Floats
    values: Floats
    anomaly: Bools
    changepoint: Bools


def load_skab_file(path: str | Path, name: str | None = None) -> SkabFile:
    """Read one SKAB CSV (``datetime;<sensors>;anomaly;changepoint``)."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(";")
        rows = [line.rstrip("\n").split(";") for line in fh if line.strip()]
    col = {c: i for i, c in enumerate(header)}
    missing = [c for c in ("datetime", *SENSOR_COLUMNS) if c not in col]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")

    def column(c: str) -> Floats:
        if c not in col:
            return np.zeros(len(rows))
        return np.array([r[col[c]] or "nan" for r in rows], dtype=np.float64)

    return SkabFile(
        name=name or path.name,
        timestamps=parse_timestamps([r[col["datetime"]] for r in rows]),
        values=np.column_stack([column(c) for c in SENSOR_COLUMNS]),
        anomaly=column("anomaly") == 1.0,
        changepoint=column("changepoint") == 1.0,
    )


def load_skab(skab_dir: str | Path, groups: Sequence[str] = ("valve1", "valve2")) -> list[SkabFile]:
    """Every CSV of the given groups, named ``<group>/<file>``, in numeric file order."""
    out: list[SkabFile] = []
    for group in groups:
        paths = sorted(
            (Path(skab_dir) / group).glob("*.csv"),
            key=lambda p: (int(p.stem) if p.stem.isdigit() else math.inf, p.stem),
        )
        out.extend(load_skab_file(p, f"{group}/{p.name}") for p in paths)
    if not out:
        raise FileNotFoundError(f"no SKAB files for {list(groups)} under {skab_dir}")
    return out


@dataclass(frozen=True)
class BinaryMetrics:
    """Point-wise counts summed over files, with SKAB's rates (fractions, not percent)."""

    tp: int
    tn: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        denominator = self.tp + (self.fp + self.fn) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        """False alarm rate FP / (FP + TN)."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        """Missed alarm rate FN / (FN + TP)."""
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


def binary_metrics(truths: Sequence[Bools], predictions: Sequence[Bools]) -> BinaryMetrics:
    """Point-wise confusion counts over all files (truth and prediction per row)."""
    if len(truths) != len(predictions):
        raise ValueError("one prediction array per truth array")
    tp = tn = fp = fn = 0
    for truth, pred in zip(truths, predictions, strict=True):
        t = np.asarray(truth, dtype=bool)
        p = np.asarray(pred, dtype=bool)
        if t.shape != p.shape:
            raise ValueError(f"shapes differ: truth {t.shape}, prediction {p.shape}")
        tp += int(np.sum(t & p))
        tn += int(np.sum(~t & ~p))
        fp += int(np.sum(~t & p))
        fn += int(np.sum(t & ~p))
    return BinaryMetrics(tp, tn, fp, fn)


def predicted_changepoints(prediction: Bools) -> Bools:
    """Rows where a binary prediction changes; the first row counts when it is already 1."""
    p = np.asarray(prediction, dtype=bool)
    out = np.empty_like(p)
    if p.size:
        out[0] = p[0]
        out[1:] = p[1:] != p[:-1]
    return out


def _windows(cp_times: Floats, width: float) -> list[tuple[float, float]]:
    windows = [[float(c), float(c) + width] for c in np.sort(cp_times)]
    for prev, nxt in itertools.pairwise(windows):
        nxt[0] = max(nxt[0], prev[1])  # "cut right window"
    return [(a, b) for a, b in windows]


def _curve(profile: Profile) -> Floats:
    x = np.linspace(-math.pi / 2, math.pi / 2, _STEPS)
    half = (profile.a_tp + profile.a_fp) / 2
    return half * -np.tanh(x) / math.tanh(math.pi / 2) + half - profile.a_fp


def _file_parts(
    timestamps: Floats, true_cp: Bools, pred_cp: Bools, width: float
) -> tuple[int, list[int], int]:
    """Number of windows, the curve index of each detected window, and the false positives."""
    times = np.asarray(timestamps, dtype=np.float64)
    pred_times = np.sort(times[np.asarray(pred_cp, dtype=bool)])
    windows = _windows(times[np.asarray(true_cp, dtype=bool)], width)
    if not windows:
        return 0, [], int(pred_times.size)
    outside = pred_times < windows[0][0]
    steps: list[int] = []
    for i, (start, end) in enumerate(windows):
        inside = pred_times[(pred_times >= start) & (pred_times <= end)]
        if inside.size:
            frac = (inside[0] - start) / (end - start) if end > start else 0.0
            steps.append(min(int(frac * _STEPS), _STEPS - 1))
        upper = windows[i + 1][0] if i + 1 < len(windows) else math.inf
        outside |= (pred_times > end) & (pred_times < upper)
    return len(windows), steps, int(outside.sum())


def nab_scores(
    timestamps: Sequence[Floats],
    true_changepoints: Sequence[Bools],
    predicted_cps: Sequence[Bools],
    window_seconds: float = WINDOW_SECONDS,
    profiles: Sequence[Profile] = PROFILES,
) -> dict[str, float]:
    """SKAB's NAB-style score per profile name, over all files (timestamps in seconds)."""
    parts = [
        _file_parts(t, c, p, window_seconds)
        for t, c, p in zip(timestamps, true_changepoints, predicted_cps, strict=True)
    ]
    n_windows = sum(n for n, _, _ in parts)
    false_positives = sum(f for _, _, f in parts)
    steps = [s for _, found, _ in parts for s in found]
    out: dict[str, float] = {}
    for profile in profiles:
        curve = _curve(profile)
        raw = (
            math.fsum(float(curve[s]) for s in steps)
            - profile.a_fn * (n_windows - len(steps))
            - profile.a_fp * false_positives
        )
        null = -profile.a_fn * n_windows
        perfect = profile.a_tp * n_windows
        out[profile.name] = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return out
