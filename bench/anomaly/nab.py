"""A scorer for the Numenta Anomaly Benchmark (NAB v1.1), written from its published definition.

References: Lavin & Ahmad 2015 ("Evaluating real-time anomaly detection algorithms - the Numenta
Anomaly Benchmark"), Ahmad et al. 2017 (Neurocomputing, doi 10.1016/j.neucom.2017.04.070) and the
scoring description of ``numenta/NAB`` (its sweeper), whose conventions this module follows:

* **Probation**: the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a file (at most 750) are
  ignored, detections and windows alike.
* **Windows** are row ranges ``[left, right]`` (inclusive) from ``labels/combined_windows.json``;
  their limits must be timestamps present in the file.
* **Detections**: a row is a detection when its anomaly score is ``>= threshold``.
* **True positive**: only the earliest detection inside a window counts. At row ``i`` of a window of
  ``w`` rows it earns ``A_TP * sigma(-(right - i + 1) / w) / sigma(-1)``, where
  ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` (and ``-1`` for ``x > 3``): exactly ``A_TP`` at the left
  edge, falling towards the right edge. Later detections in the same window add nothing.
* **Missed window**: ``-A_FN``.
* **False positive** (a detection outside every window): ``A_FP * sigma((i - right_prev) /
  (w_prev - 1))`` relative to the closest preceding window (a mild penalty just after a window),
  and ``-A_FP`` when no window precedes it.
* **Threshold**: one per detector and profile, optimised over the whole corpus: every distinct score
  of a scorable row is a candidate (plus "never fire", reported as ``inf``); the one with the best
  total raw score wins, the highest threshold on ties.
* **Normalisation**: ``100 * (S - S_null) / (S_perfect - S_null)``, with ``S_null = -A_FN * windows``
  (the detector that never fires) and ``S_perfect = A_TP * windows``.

Public API::

    files = load_corpus(nab_dir)                       # list[NabFile], nab_dir holds data/, labels/
    scores = load_reference_scores(nab_dir, "numenta")  # {"realKnownCause/nyc_taxi.csv": array}
    result = score_corpus(files, scores, STANDARD)      # NabResult, corpus-optimised threshold
    fixed = score_corpus(files, scores, STANDARD, threshold=0.7)   # a fixed operating threshold

Reproduction (``tests/test_nab_scorer.py``): the published outputs of ARTime and windowedGaussian
score exactly their published figures with the optimised threshold (windowedGaussian only with
its scores at 12 significant digits, as NAB's Python 2 results files held them; see
`load_reference_scores`). numenta's standard and low-FN figures match too; its published low-FP
figure (63.12) is the score at the threshold NAB's older optimiser stored (0.5751955...), which
this scorer reproduces to 1e-9 in raw score, while the full sweep finds a better one (63.21).

A row-window of one row (which NAB itself never has) uses ``w_prev - 1 = 1`` for the decay of the
false positives after it.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.anomaly.data import parse_timestamps

__all__ = [
    "PROFILES",
    "REWARD_LOW_FN",
    "REWARD_LOW_FP",
    "STANDARD",
    "NabFile",
    "NabResult",
    "Profile",
    "load_corpus",
    "load_reference_scores",
    "probation_length",
    "scaled_sigmoid",
    "score_corpus",
]

Floats = NDArray[np.float64]

PROBATION_FRACTION = 0.15
_MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # sigma(-1), the reward at a window's left edge


@dataclass(frozen=True)
class Profile:
    """A NAB application profile: the weights of true positives, false positives, misses."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
REWARD_LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
PROFILES: tuple[Profile, ...] = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


@dataclass(frozen=True)
class NabFile:
    """One series: `name` is its path relative to ``data/`` (``realKnownCause/nyc_taxi.csv``);
    `windows` are inclusive row ranges ``(left, right)`` in time order."""

    name: str
    timestamps: Floats
    values: Floats
    windows: tuple[tuple[int, int], ...]

    @property
    def probation(self) -> int:
        """Rows at the start of the file that are never scored."""
        return probation_length(len(self.timestamps))


@dataclass(frozen=True)
class NabResult:
    """The corpus score of one detector under one profile at one threshold."""

    profile: Profile
    threshold: float  # detections are scores >= threshold; inf = never fire
    score: float  # normalised: 0 = never fire, 100 = perfect
    raw: float
    raw_null: float
    raw_perfect: float
    windows: int
    detected: int  # windows with at least one detection
    false_positives: int  # detections outside every window
    per_file: Mapping[str, float]  # raw score per file


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """NAB's probationary period: ``min(floor(fraction * n), fraction * 5000)`` rows."""
    return math.ceil(min(math.floor(fraction * n_rows), fraction * 5000))


def scaled_sigmoid(x: Floats | float) -> Floats:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 x)) - 1``, and ``-1`` for ``x > 3``."""
    arr = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * arr)) - 1.0
    return np.where(arr > 3.0, -1.0, val)


# -- reading -----------------------------------------------------------------------------------


def _read_csv_columns(path: Path, wanted: Sequence[str]) -> dict[str, list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        idx = [header.index(c) for c in wanted]
        cols: dict[str, list[str]] = {c: [] for c in wanted}
        for line in fh:
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(",")
            for c, i in zip(wanted, idx, strict=True):
                cols[c].append(parts[i])
    return cols


def _row_of(texts: Sequence[str], stamp: str, name: str) -> int:
    key = stamp[:19]
    try:
        return texts.index(key)
    except ValueError:
        raise ValueError(f"window limit {stamp!r} is not a timestamp of {name}") from None


def load_corpus(nab_dir: str | Path) -> list[NabFile]:
    """Read every file listed in ``labels/combined_windows.json`` with its windows, sorted by name."""
    root = Path(nab_dir)
    labels: dict[str, list[list[str]]] = json.loads(
        (root / "labels" / "combined_windows.json").read_text(encoding="utf-8")
    )
    files = []
    for name in sorted(labels):
        cols = _read_csv_columns(root / "data" / name, ("timestamp", "value"))
        texts = cols["timestamp"]
        windows = tuple(
            (_row_of(texts, start, name), _row_of(texts, end, name)) for start, end in labels[name]
        )
        files.append(
            NabFile(
                name=name,
                timestamps=parse_timestamps(texts),
                values=np.array(cols["value"], dtype=np.float64),
                windows=windows,
            )
        )
    return files


def load_reference_scores(
    nab_dir: str | Path, detector: str, significant_digits: int | None = 12
) -> dict[str, Floats]:
    """Anomaly scores of a published detector from
    ``reference-detectors/<detector>/<category>/<detector>_<file>.csv.gz``, keyed like `NabFile.name`.

    NAB's published figures were computed from results files written by Python 2, whose
    ``str(float)`` keeps 12 significant digits; `significant_digits` (default 12) rounds the scores
    the same way (``None`` keeps them as stored). It matters only for detectors whose scores crowd
    just below 1.0, such as windowedGaussian.
    """
    base = Path(nab_dir) / "reference-detectors" / detector
    prefix = detector + "_"
    out: dict[str, Floats] = {}
    for path in sorted(base.glob("*/*.csv*")):
        file_name = path.name.removesuffix(".gz")
        if not file_name.startswith(prefix):
            continue
        texts = _read_csv_columns(path, ("anomaly_score",))["anomaly_score"]
        if significant_digits is not None:
            texts = [f"{float(t):.{significant_digits}g}" for t in texts]
        out[f"{path.parent.name}/{file_name[len(prefix) :]}"] = np.array(texts, dtype=np.float64)
    if not out:
        raise FileNotFoundError(f"no reference scores under {base}")
    return out


# -- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Scorable rows of one file: score, window index within the file (-1 outside), and the
    unweighted reward (inside a window) or penalty (outside) of a detection there."""

    name: str
    scores: Floats
    window: NDArray[np.int64]
    value: Floats
    n_windows: int


def _prepare(file: NabFile, scores: Floats) -> _Prepared:
    n = len(file.timestamps)
    if scores.shape != (n,):
        raise ValueError(f"{file.name}: {scores.shape[0]} scores for {n} rows")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{file.name}: anomaly scores must be finite")
    window = np.full(n, -1, dtype=np.int64)
    value = np.full(n, -1.0)  # before any window: the full false-positive penalty
    rows = np.arange(n, dtype=np.float64)
    for k, (left, right) in enumerate(file.windows):
        if not 0 <= left <= right < n:
            raise ValueError(f"{file.name}: window {k} ({left}, {right}) is out of range")
        width = right - left + 1
        window[left : right + 1] = k
        inside = rows[left : right + 1]
        value[left : right + 1] = scaled_sigmoid(-(right - inside + 1.0) / width) / _MAX_TP
        stop = file.windows[k + 1][0] if k + 1 < len(file.windows) else n
        after = rows[right + 1 : stop]
        value[right + 1 : stop] = scaled_sigmoid((after - right) / max(width - 1, 1))
    keep = slice(file.probation, n)
    return _Prepared(
        file.name,
        scores[keep].astype(np.float64),
        window[keep],
        value[keep],
        int(np.unique(window[keep][window[keep] >= 0]).size),
    )


def _sweep(prepared: Sequence[_Prepared], profile: Profile) -> float:
    """The best threshold over the corpus: the highest of those with the best total raw score."""
    ev_score: list[Floats] = []
    ev_fp: list[Floats] = []
    ev_tp: list[Floats] = []
    ev_det: list[Floats] = []
    for p in prepared:
        outside = p.window < 0
        ev_score.append(p.scores[outside])
        ev_fp.append(p.value[outside])
        ev_tp.append(np.zeros(int(outside.sum())))
        ev_det.append(np.zeros(int(outside.sum())))
        for k in np.unique(p.window[~outside]):
            sel = p.window == k
            order = np.argsort(-p.scores[sel], kind="stable")
            best = np.maximum.accumulate(p.value[sel][order])
            rises = np.concatenate(([True], best[1:] > best[:-1]))
            gain = np.diff(best[rises], prepend=0.0)
            ev_score.append(p.scores[sel][order][rises])
            ev_fp.append(np.zeros(gain.size))
            ev_tp.append(gain)
            ev_det.append(np.concatenate(([1.0], np.zeros(gain.size - 1))))
    scores = np.concatenate(ev_score)
    order = np.argsort(-scores, kind="stable")
    desc = scores[order]
    gain = (
        profile.a_fp * np.concatenate(ev_fp)[order]
        + profile.a_tp * np.concatenate(ev_tp)[order]
        + profile.a_fn * np.concatenate(ev_det)[order]
    )
    cum = np.concatenate(([0.0], np.cumsum(gain)))
    all_scores = np.concatenate([p.scores for p in prepared])
    candidates = np.concatenate(([math.inf], np.unique(all_scores)[::-1]))
    counts = np.searchsorted(-desc, -candidates, side="right")
    totals = cum[counts]
    return float(candidates[int(np.argmax(totals))])


def _score_at(p: _Prepared, threshold: float, profile: Profile) -> tuple[float, int, int]:
    """Raw score, detected windows and false positives of one file at `threshold`."""
    fired = p.scores >= threshold
    false_pos = fired & (p.window < 0)
    raw = profile.a_fp * float(p.value[false_pos].sum())
    detected = 0
    for k in np.unique(p.window[p.window >= 0]):
        hits = fired & (p.window == k)
        if hits.any():
            detected += 1
            raw += profile.a_tp * float(p.value[hits].max())
        else:
            raw -= profile.a_fn
    return raw, detected, int(false_pos.sum())


def score_corpus(
    files: Sequence[NabFile],
    scores_by_file: Mapping[str, Floats],
    profile: Profile = STANDARD,
    threshold: float | None = None,
) -> NabResult:
    """Score a detector over `files` under `profile`.

    `scores_by_file` maps each `NabFile.name` to the detector's anomaly scores, one per row.
    With `threshold=None` the threshold is optimised over the whole corpus (NAB's protocol);
    otherwise detections are the rows scoring ``>= threshold``.
    """
    missing = [f.name for f in files if f.name not in scores_by_file]
    if missing:
        raise KeyError(f"no scores for {len(missing)} file(s), e.g. {missing[0]}")
    prepared = [_prepare(f, np.asarray(scores_by_file[f.name], dtype=np.float64)) for f in files]
    chosen = _sweep(prepared, profile) if threshold is None else float(threshold)
    per_file: dict[str, float] = {}
    detected = false_positives = 0
    for p in prepared:
        raw_file, det, fps = _score_at(p, chosen, profile)
        per_file[p.name] = raw_file
        detected += det
        false_positives += fps
    raw = math.fsum(per_file.values())
    n_windows = sum(p.n_windows for p in prepared)
    null = -profile.a_fn * n_windows
    perfect = profile.a_tp * sum(len(f.windows) for f in files)
    normalised = 0.0 if perfect == null else 100.0 * (raw - null) / (perfect - null)
    return NabResult(
        profile=profile,
        threshold=chosen,
        score=normalised,
        raw=raw,
        raw_null=null,
        raw_perfect=perfect,
        windows=n_windows,
        detected=detected,
        false_positives=false_positives,
        per_file=per_file,
    )
