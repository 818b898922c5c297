"""Score the hub's anomaly models on the public benchmarks, beside the published figures.

    python -m bench.anomaly [--data PATH] [--model NAME ...] [--no-nab] [--no-skab] [--no-cost]

* **NAB v1.1** (58 series, one column each): every profile (standard / reward low FP / reward low
  FN) at the corpus-optimised threshold (NAB's protocol) and at the model's own operating
  threshold. The published detectors' outputs under ``nab/reference-detectors`` are re-scored here
  too, as a check of the scorer. One more row scores the hub as it runs: the incidents the
  anomaly rule opens from the daemon's sustained score (``bench.anomaly.incidents.openings``).
* **SKAB valve1 + valve2** (8 columns): in each file the first 400 rows calibrate and the rest is
  scored with the model's binary decisions: point-wise F1 / FAR / MAR and the NAB-style score with
  60 s windows right of each change point.
* **SKAB anomaly-free** (9,405 rows, 2.8 h of a normal loop warming up): the share of rows each
  model flags after calibrating on the first 400 rows (the benchmark's protocol) and on the first
  2,000 (33 minutes, the loop's warm-up included): why the daemon calibrates for hours.
* **Cost**: the univariate detector's µs per reading in batches of 256 and one at a time, beside
  the bare session call on the same feature rows: the hub's (onnxruntime's C API) and onnxruntime's
  Python binding.

The models come from ``models.detect`` (imported lazily; a missing model is reported, not fatal).
A causal z-score baseline computed here anchors each table: on NAB a rolling window of the previous
500 readings, on SKAB the mean and spread of the 400 calibration rows (per column, the largest
|z| wins); both score ``z / (z + 3)`` and fire at ``z >= 3``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.anomaly import nab, skab
from bench.anomaly.data import DataNotFoundError, find_data_root

Floats = NDArray[np.float64]

CALIBRATE_ROWS = 400
ROLLING_ROWS = 500
BASELINE = "z-score (ours)"
#: The hub as it runs: the daemon's sustained score through the anomaly rule, its incidents as
#: the detections (one per episode, hours after an onset by design).
INCIDENTS = "univariate -> anomaly rule (incidents)"
NAB_PUBLISHED = {  # standard / reward low FP / reward low FN, Ahmad et al. 2017 and NAB's scoreboard
    "ARTime": (74.85, 65.15, 80.36),
    "Numenta HTM": (70.10, 63.12, 74.32),
    "CAD OSE": (69.90, 66.98, 73.18),
    "windowed Gaussian": (39.65, 20.87, 47.41),
}
NAB_REFERENCE = ("ARTime", "numenta", "windowedGaussian")
SKAB_PUBLISHED = (  # valve1 + valve2: (detector, NAB standard, F1)
    ("MSCRED", "36.6", "-"),
    ("MSET", "-", "0.77"),
    ("3-sigma", "20.2", "0.75"),
)


@dataclass(frozen=True)
class Table:
    """The shape of `models.detect.ScoreTable`."""

    scores: Floats
    is_anomaly: NDArray[np.bool_]
    threshold: float


Scorer = Callable[[Floats, Floats, int | None], Table]


def zscore_baseline(timestamps: Floats, values: Floats, calibrate_rows: int | None = None) -> Table:
    """The causal z-score baseline: calibration-row statistics when `calibrate_rows` is given,
    else a rolling window of the previous `ROLLING_ROWS` readings (the current one excluded)."""
    del timestamps  # rows are taken in order
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    if calibrate_rows:
        mean = np.nanmean(x[:calibrate_rows], axis=0)
        std = np.nanstd(x[:calibrate_rows], axis=0)
        count = np.full(len(x), calibrate_rows)
    else:
        filled = np.nan_to_num(x)
        seen = (~np.isnan(x)).astype(np.float64)
        c0, c1, c2 = (
            np.vstack([np.zeros((1, x.shape[1])), np.cumsum(a, axis=0)])
            for a in (seen, filled, filled * filled)
        )
        i = np.arange(len(x))
        lo = np.maximum(0, i - ROLLING_ROWS)
        n = c0[i] - c0[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (c1[i] - c1[lo]) / n
            std = np.sqrt(np.maximum((c2[i] - c2[lo]) / n - mean * mean, 0.0))
        count = n.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(x - mean) / std
    z = np.where(np.isnan(z), 0.0, np.where(np.isinf(z), 1e9, z)).max(axis=1)
    z[count < 2] = 0.0
    if calibrate_rows:
        z[:calibrate_rows] = 0.0
    scores = z / (z + 3.0)
    return Table(scores, scores >= 0.5, 0.5)


def _model_scorer(name: str) -> Scorer:
    from models.detect import score_table

    def run(timestamps: Floats, values: Floats, calibrate_rows: int | None) -> Table:
        out = score_table(name, timestamps, values, calibrate_rows=calibrate_rows)
        scores = np.nan_to_num(np.asarray(out.scores, dtype=np.float64), nan=0.0)
        return Table(scores, np.asarray(out.is_anomaly, dtype=bool), float(out.threshold))

    return run


def _incident_scorer(timestamps: Floats, values: Floats, calibrate_rows: int | None) -> Table:
    """The hub as it runs: 1 at the rows where the anomaly rule opens an incident, else 0."""
    from bench.anomaly.incidents import openings
    from models.detect import detector
    from models.univariate import UnivariateDetector

    del calibrate_rows  # the univariate model has no calibration stretch
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    x = np.asarray(values, dtype=np.float64).reshape(len(timestamps), -1)
    if x.shape[1] != 1:
        raise ValueError(f"model univariate scores one column, got {x.shape[1]}")
    scores = np.zeros(len(timestamps))
    scores[openings(det, timestamps.tolist(), x[:, 0].tolist())] = 1.0
    return Table(scores, scores >= 0.5, 0.5)


def _detectors(wanted: Sequence[str] | None) -> list[tuple[str, Scorer]]:
    out: list[tuple[str, Scorer]] = [(BASELINE, zscore_baseline)]
    try:
        from models.detect import list_models

        names = list(wanted) if wanted else list_models()
    except Exception as err:  # noqa: BLE001 - a broken or absent models package is reported, not fatal
        print(f"models.detect unavailable ({type(err).__name__}: {err}): baseline only")
        return out
    out.extend((name, _model_scorer(name)) for name in names)
    if "univariate" in names:
        out.append((INCIDENTS, _incident_scorer))
    return out


def _why(err: Exception) -> str:
    if isinstance(err, ValueError):  # models.detect: a shape the model does not take
        return f"n/a ({err})"
    return f"unavailable ({type(err).__name__}: {err})"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def run_nab(root: Path, detectors: Sequence[tuple[str, Scorer]]) -> None:
    files = nab.load_corpus(root)
    rows = sum(len(f.timestamps) for f in files)
    print(
        f"\n## NAB v1.1: {len(files)} files, {rows} readings, {sum(len(f.windows) for f in files)} windows\n"
    )
    print("| detector | threshold | standard | reward low FP | reward low FN | µs/reading |")
    print("|---|---|---|---|---|---|")
    for name, fig in NAB_PUBLISHED.items():
        print(f"| {name} (published) | optimised | {' | '.join(_fmt(v) for v in fig)} | |")
    for ref in NAB_REFERENCE:
        if (root / "reference-detectors" / ref).is_dir():
            scores = nab.load_reference_scores(root, ref)
            res = [nab.score_corpus(files, scores, p) for p in nab.PROFILES]
            print(
                f"| {ref} (published output, scored here) | optimised | {' | '.join(_fmt(r.score) for r in res)} | |"
            )
    for name, scorer in detectors:
        try:
            start = time.perf_counter()
            tables = {f.name: scorer(f.timestamps, f.values, None) for f in files}
            per_reading = (time.perf_counter() - start) / rows * 1e6
        except Exception as err:  # noqa: BLE001 - one failing model must not hide the others
            print(f"| {name} | {_why(err)} | | | | |")
            continue
        scores = {k: t.scores for k, t in tables.items()}
        fixed = next(iter(tables.values())).threshold
        best = [nab.score_corpus(files, scores, p) for p in nab.PROFILES]
        own = [nab.score_corpus(files, scores, p, threshold=fixed) for p in nab.PROFILES]
        thresholds = "/".join(f"{r.threshold:.4g}" for r in best)
        print(
            f"| {name} | optimised {thresholds} | {' | '.join(_fmt(r.score) for r in best)} | {per_reading:.2f} |"
        )
        print(f"| {name} | own {fixed:.4g} | {' | '.join(_fmt(r.score) for r in own)} | |")


def run_skab(root: Path, detectors: Sequence[tuple[str, Scorer]]) -> None:
    files = skab.load_skab(root)
    scored = sum(len(f.timestamps) - CALIBRATE_ROWS for f in files)
    print(
        f"\n## SKAB valve1 + valve2: {len(files)} files, first {CALIBRATE_ROWS} rows of each calibrate, {scored} readings scored\n"
    )
    print("| detector | F1 | FAR % | MAR % | NAB standard | low FP | low FN | µs/reading |")
    print("|---|---|---|---|---|---|---|---|")
    for name, nab_std, f1 in SKAB_PUBLISHED:
        print(f"| {name} (published) | {f1} | | | {nab_std} | | | |")
    cut = CALIBRATE_ROWS
    for name, scorer in detectors:
        try:
            start = time.perf_counter()
            preds = [scorer(f.timestamps, f.values, cut).is_anomaly[cut:] for f in files]
            per_reading = (
                (time.perf_counter() - start) / sum(len(f.timestamps) for f in files) * 1e6
            )
        except Exception as err:  # noqa: BLE001 - one failing model must not hide the others
            print(f"| {name} | {_why(err)} | | | | | | |")
            continue
        m = skab.binary_metrics([f.anomaly[cut:] for f in files], preds)
        s = skab.nab_scores(
            [f.timestamps[cut:] for f in files],
            [f.changepoint[cut:] for f in files],
            [skab.predicted_changepoints(p) for p in preds],
        )
        print(
            f"| {name} | {m.f1:.2f} | {100 * m.far:.1f} | {100 * m.mar:.1f} | "
            f"{' | '.join(_fmt(v) for v in s.values())} | {per_reading:.2f} |"
        )


def run_skab_anomaly_free(root: Path, detectors: Sequence[tuple[str, Scorer]]) -> None:
    path = root / "anomaly-free" / "anomaly-free.csv"
    if not path.exists():
        return
    free = skab.load_skab_file(path)
    hours = (free.timestamps[-1] - free.timestamps[0]) / 3600
    stretches = (CALIBRATE_ROWS, 2000)
    print(
        f"\n## SKAB anomaly-free: {len(free.timestamps)} rows ({hours:.1f} h) of a normal loop; "
        "rows flagged after calibrating on its first N rows\n"
    )
    print("| detector | " + " | ".join(f"N = {n}" for n in stretches) + " |")
    print("|---|" + "---|" * len(stretches))
    for name, scorer in detectors:
        try:
            flagged = [
                float(np.mean(scorer(free.timestamps, free.values, n).is_anomaly[n:]))
                for n in stretches
            ]
        except Exception as err:  # noqa: BLE001 - one failing model must not hide the others
            print(f"| {name} | {_why(err)} |" + " |" * (len(stretches) - 1))
            continue
        print(f"| {name} | " + " | ".join(f"{100 * f:.1f} %" for f in flagged) + " |")


def run_cost(readings: int = 20_000, batch: int = 256) -> None:
    """The univariate detector's cost per reading, batched (as the daemon scores) and one at a
    time, beside the bare session call on the same feature rows: the hub's own (onnxruntime's C
    API, `models.ort_capi`) and onnxruntime's Python binding (the library's floor)."""
    from models.detect import detector
    from models.ort_capi import Tensor
    from models.runtime import MODELS_DIR
    from models.train import synthetic
    from models.univariate import StreamState, UnivariateDetector

    det = detector("univariate")  # first: it opts out of onnxruntime's telemetry (ort_capi)
    assert isinstance(det, UnivariateDetector)
    import onnxruntime as ort

    s = synthetic.make_stream("power", readings, np.random.default_rng(1))
    items = list(zip(s.t.tolist(), s.x.tolist(), strict=True))
    name = det.model.session.inputs[0]

    def hub(size: int) -> float:
        state = StreamState()
        start = time.perf_counter()
        for i in range(0, readings, size):
            det.score_batch([(state, t, x) for t, x in items[i : i + size]])
        return (time.perf_counter() - start) / readings * 1e6

    state = StreamState()
    rows = [state.features.step(t, x)[0] for t, x in items]
    width = len(rows[0])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    binding = ort.InferenceSession(str(MODELS_DIR / det.model.card["file"]), options)

    def capi(size: int) -> float:
        feeds = [
            {name: Tensor.of_rows(rows[i : i + size], width)} for i in range(0, readings, size)
        ]
        start = time.perf_counter()
        for feed in feeds:
            det.model.run(feed)
        return (time.perf_counter() - start) / readings * 1e6

    def python(size: int) -> float:
        array = np.asarray(rows, dtype=np.float32)
        feeds = [{name: array[i : i + size]} for i in range(0, readings, size)]
        start = time.perf_counter()
        for feed in feeds:
            binding.run(None, feed)
        return (time.perf_counter() - start) / readings * 1e6

    print(f"\n## Cost of the univariate detector ({readings} readings of one stream)\n")
    print(
        "| | detector µs/reading | its session call (C API) µs/reading "
        "| onnxruntime Python binding µs/reading | detector / binding |"
    )
    print("|---|---|---|---|---|")
    for label, size in ((f"batches of {batch}", batch), ("one at a time", 1)):
        ours = min(hub(size) for _ in range(3))
        call = min(capi(size) for _ in range(3))
        floor = min(python(size) for _ in range(3))
        print(f"| {label} | {ours:.1f} | {call:.1f} | {floor:.1f} | {ours / floor:.1f}x |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.anomaly", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", help="directory holding nab/ and skab/ (else $HOMEGUARD_DATA)")
    parser.add_argument(
        "--model", action="append", help="a model of models.detect (repeatable; default: all)"
    )
    parser.add_argument("--no-nab", action="store_true", help="skip NAB")
    parser.add_argument("--no-skab", action="store_true", help="skip SKAB")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost per reading")
    args = parser.parse_args(argv)
    try:
        root = find_data_root(args.data)
    except DataNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    detectors = _detectors(args.model)
    if not args.no_cost:
        try:
            run_cost()
        except Exception as err:  # noqa: BLE001 - a missing model is reported, not fatal
            print(f"cost: univariate {_why(err)}")
    if not args.no_nab and (root / "nab").is_dir():
        run_nab(root / "nab", detectors)
    if not args.no_skab and (root / "skab").is_dir():
        run_skab(root / "skab", detectors)
        run_skab_anomaly_free(root / "skab", detectors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
