"""Incidents from the anomaly models, end to end: the sustained score through the anomaly rule.

    python -m bench.anomaly.incidents [--seeds 7 11 23] [--streams 56] [--days 4]

What a homeowner sees is not a score but an incident. For each seed, `--streams` synthetic
household streams of `models.train.synthetic` (every kind in turn, 10 s to 5 min sampling, `--days`
long; the first day is the detector's warm-up) are scored by the univariate detector the way the
daemon scores them (`Score.sustained`, the score `AnomalyService` publishes) and each score goes
through `rules.anomaly.AnomalyRule` with its defaults. Each stream runs six times:

* as it is: every incident opened is a false one (per 1000 stream-hours after the warm-up);
* once with each fault (`synthetic.inject`: spike, level shift, drift, stuck sensor, leak),
  starting in its second half: a spike must open nothing; the other kinds count as found when an
  incident opens after the fault's start, with the delay from the start. An incident the stream
  opens without the fault too (within an hour of it) is not credited to the fault.

No public data is needed. Seeds 7 and 11 were used to tune the rule's defaults; 23 is held out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hub.bus import Bus
from hub.events import AnomalyScore
from models.detect import detector
from models.train import synthetic
from models.univariate import StreamState, UnivariateDetector
from rules.anomaly import AnomalyRule

DAY_S = 86_400.0
#: Readings generated per stream before it is cut to `--days` (enough at 10 s for 4 days).
_MAX_READINGS = 4 * 8640


@dataclass
class Tally:
    stream_hours: float = 0.0
    false_incidents: int = 0
    spike_incidents: int = 0
    found: dict[str, list[float | None]] = field(
        default_factory=lambda: {f: [] for f in synthetic.FAULTS if f != "spike"}
    )


def openings(det: UnivariateDetector, t: Sequence[float], x: Sequence[float]) -> list[int]:
    """The rows at which the anomaly rule opens an incident for one stream, scored as the daemon
    scores it (the sustained score, the rule's defaults)."""
    state = StreamState()
    scores = det.score_batch([(state, ti, xi) for ti, xi in zip(t, x, strict=True)])
    rule = AnomalyRule(bus=Bus())
    out = []
    for i, score in enumerate(scores):
        if score is None:
            continue
        event = AnomalyScore(
            stream="bench/stream",
            system="electrical",
            model="univariate",
            model_version=det.model.version,
            score=score.sustained,
            threshold=det.threshold,
            at=t[i],
        )
        report = rule.step(event)
        if report is not None and report.title:  # an opening, not an episode's end
            out.append(i)
    return out


def opened_at(det: UnivariateDetector, s: synthetic.Stream, after: float) -> list[float]:
    """When the rule opened incidents for stream `s` (only those at or after `after`)."""
    t = s.t.tolist()
    return [t[i] for i in openings(det, t, s.x.tolist()) if t[i] >= after]


def _stream(kind: str, rng: np.random.Generator, days: float) -> synthetic.Stream:
    s = synthetic.make_stream(kind, _MAX_READINGS, rng)
    keep = s.t < s.t[0] + days * DAY_S
    return synthetic.Stream(kind, s.t[keep], s.x[keep])


def run_seed(det: UnivariateDetector, seed: int, count: int, days: float) -> Tally:
    rng = np.random.default_rng(seed)
    tally = Tally()
    for i in range(count):
        s = _stream(synthetic.KINDS[i % len(synthetic.KINDS)], rng, days)
        warm = s.t[0] + DAY_S
        tally.stream_hours += (s.t[-1] - warm) / 3600.0
        false = opened_at(det, s, warm)
        tally.false_incidents += len(false)
        for fault in synthetic.FAULTS:
            bad = synthetic.inject(s, fault, rng)
            assert bad.fault_at is not None
            start = float(bad.t[bad.fault_at])
            # An incident the stream opens without the fault too (within the hour) is not the
            # fault's: it is already counted as a false one.
            opened = [
                t for t in opened_at(det, bad, start) if all(abs(t - f) > 3600 for f in false)
            ]
            if fault == "spike":
                tally.spike_incidents += len(opened)
            else:
                tally.found[fault].append(opened[0] - start if opened else None)
    return tally


def _row(name: str, tallies: Sequence[Tally]) -> list[str]:
    hours = sum(t.stream_hours for t in tallies)
    false = sum(t.false_incidents for t in tallies)
    spikes = sum(t.spike_incidents for t in tallies)
    cells = [name, f"{1000 * false / hours:.2f} ({false} in {hours:,.0f} h)", str(spikes)]
    for fault in tallies[0].found:
        delays = [d for t in tallies for d in t.found[fault]]
        hit = [d for d in delays if d is not None]
        median = f", {statistics.median(hit) / 3600:.1f} h" if hit else ""
        cells.append(f"{len(hit)}/{len(delays)}{median}")
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.anomaly.incidents", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    parser.add_argument("--streams", type=int, default=56, help="streams per seed")
    parser.add_argument("--days", type=float, default=4.0)
    args = parser.parse_args(argv)
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    start = time.perf_counter()
    tallies = {seed: run_seed(det, seed, args.streams, args.days) for seed in args.seeds}
    faults = [f for f in synthetic.FAULTS if f != "spike"]
    print(
        f"\n## Incidents from the univariate model through the anomaly rule: {len(args.seeds)} "
        f"seed(s) x {args.streams} streams, {args.days:g} days each (first day warm-up)\n"
    )
    print(
        "| seed | false incidents per 1000 stream-hours | spike incidents | "
        + " | ".join(f"{f}: found, median delay" for f in faults)
        + " |"
    )
    print("|---" * (3 + len(faults)) + "|")
    rows = [_row(str(seed), [t]) for seed, t in tallies.items()]
    if len(tallies) > 1:
        rows.append(_row("all", list(tallies.values())))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
