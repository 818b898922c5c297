"""The cards' metrics: how a trained detector does on held-out synthetic streams (new seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.train import synthetic
from models.univariate import StreamState, UnivariateDetector

#: Readings after a fault's start within which a detection counts.
DETECT_WITHIN = 100
#: Readings in each held-out stream (more than a day even at 30 s: the rarity channel starts).
METRIC_LEN = 6000


def _scores(detector: UnivariateDetector, s: synthetic.Stream) -> np.ndarray:
    state = StreamState()
    out = detector.score_batch(
        [(state, t, x) for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)]
    )
    return np.asarray([0.0 if v is None else v.event for v in out])


def univariate_metrics(detector: UnivariateDetector, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    clean = synthetic.streams(seed, 35, METRIC_LEN)
    thr = detector.threshold
    fp = 0
    readings = 0
    for s in clean:
        sc = _scores(detector, s)
        fp += int((sc >= thr).sum())
        readings += sc.size
    detected: dict[str, list[bool]] = {f: [] for f in synthetic.FAULTS}
    delays: list[int] = []
    for i, s in enumerate(clean):
        fault = synthetic.FAULTS[i % len(synthetic.FAULTS)]
        bad = synthetic.inject(s, fault, rng)
        sc = _scores(detector, bad)
        assert bad.fault_at is not None
        hits = np.flatnonzero(sc[bad.fault_at : bad.fault_at + DETECT_WITHIN] >= thr)
        detected[fault].append(hits.size > 0)
        if hits.size:
            delays.append(int(hits[0]))
    return {
        "heldout": f"35 synthetic streams (seed+1), {METRIC_LEN} readings each (10 s to 5 min "
        "apart); each again with one fault in its second half",
        "false_detections_per_1000_readings": round(1000 * fp / readings, 3),
        "detection_rate_within_100_readings": {
            f: round(float(np.mean(v)), 3) for f, v in detected.items()
        },
        "median_delay_readings": float(np.median(delays)) if delays else None,
    }
