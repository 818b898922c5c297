"""Train the univariate forecaster on synthetic household streams and SKAB's normal operation."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.features import N_UNIVARIATE, UnivariateFeatures
from models.train import synthetic

Array = npt.NDArray[np.float64]

#: Hidden layers of the forecaster.
HIDDEN = (32, 16)
#: Synthetic streams for training, and readings in each.
TRAIN_STREAMS, TRAIN_LEN = 140, 3000


def feature_rows(t: Array, x: Array) -> tuple[Array, Array]:
    """The feature rows and targets of a stream, exactly as the daemon builds them."""
    feats = UnivariateFeatures()
    rows: list[list[float]] = []
    targets: list[float] = []
    for ti, xi in zip(t.tolist(), x.tolist(), strict=True):
        if feats.accepts(ti, xi):
            row, target = feats.step(ti, xi)
            rows.append(row)
            targets.append(target)
    return np.asarray(rows).reshape(-1, N_UNIVARIATE), np.asarray(targets)


def skab_normal_streams(skab_dir: Path) -> list[tuple[Array, Array]]:
    """Each column of SKAB's anomaly-free file as a univariate stream (no labelled file is used)."""
    from datetime import datetime

    path = skab_dir / "anomaly-free" / "anomaly-free.csv"
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader)
        data = list(reader)
    t = np.asarray([datetime.fromisoformat(r[0]).timestamp() for r in data])
    out = []
    for j in range(1, len(header)):
        if header[j] in ("anomaly", "changepoint"):
            continue
        out.append((t, np.asarray([float(r[j]) for r in data])))
    return out


def train(seed: int, skab_dir: Path | None) -> tuple[Any, dict[str, Any]]:
    """The fitted `MLPRegressor` and a description of its training data."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    series = [(s.t, s.x) for s in synthetic.streams(seed, TRAIN_STREAMS, TRAIN_LEN)]
    if skab_dir is not None:
        series += skab_normal_streams(skab_dir)
    xs, ys = [], []
    for t, x in series:
        rows, targets = feature_rows(t, x)
        xs.append(rows[5:])  # the very first rows have no history
        ys.append(targets[5:])
    features = np.concatenate(xs).astype(np.float32)
    targets = np.concatenate(ys).astype(np.float32)
    mlp = MLPRegressor(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        alpha=1e-4,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=25,
        early_stopping=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # max_iter is a deliberate budget (minutes, not tens of minutes), not a failure
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(features, targets)
    data = {
        "synthetic_streams": TRAIN_STREAMS,
        "synthetic_readings_each": TRAIN_LEN,
        "skab_anomaly_free_columns": len(series) - TRAIN_STREAMS,
        "rows": int(features.shape[0]),
        "validation_r2": float(mlp.best_validation_score_),
        "epochs": int(mlp.n_iter_),
    }
    return mlp, data
