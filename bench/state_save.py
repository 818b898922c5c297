"""What keeping the anomaly streams' state costs: file size, save and load time, and how long the
event loop waits while the scoring thread saves.

    python -m bench.state_save [--streams 500] [--readings 1500] [--saves 20]

`--streams` univariate streams are fed `--readings` readings each (so every channel has state),
then saved with `models.state_file.save` (what the daemon does every hour and at stop, in its
scoring thread) and read back. While a thread saves `--saves` times in a row, the event loop
sleeps 1 ms at a time and records how much later than asked it wakes (the hub's GIL switch
interval, 0.1 ms, is set as in the daemon); the baseline is the same loop with no thread saving.
A leak reading waits that long at worst, once an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import median, percentile, ratio, table
from hub.daemon import GIL_SWITCH_INTERVAL_S
from models import state_file
from models.detect import detector
from models.univariate import StreamState, UnivariateDetector


async def _wakeup_delays(busy: threading.Thread | None, duration_s: float) -> list[float]:
    """Milliseconds past each 1 ms sleep, while `busy` runs (or for `duration_s` with none)."""
    delays: list[float] = []
    if busy is not None:
        busy.start()
    stop = time.perf_counter() + duration_s
    while busy.is_alive() if busy is not None else time.perf_counter() < stop:
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        delays.append((time.perf_counter() - start - 0.001) * 1e3)
    if busy is not None:
        busy.join()
    return delays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_save", description=__doc__)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--readings", type=int, default=1500)
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    streams = {f"device-{i}/power": (StreamState(), 0.0) for i in range(args.streams)}
    for r in range(args.readings):
        det.score_batch(
            [(s, 60.0 * r, 20 + math.sin(r / 30 + i)) for i, (s, _) in enumerate(streams.values())]
        )
    gc.collect()
    gc.freeze()  # as the daemon does once started
    sha = str(det.model.card["sha256"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anomaly_streams.json"
        saves, loads = [], []
        for _ in range(5):
            start = time.perf_counter()
            state_file.save(path, sha, 0.0, streams)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            state_file.load(path, sha, det.params, det.sustained)
            loads.append(time.perf_counter() - start)
        size = path.stat().st_size

        def save_repeatedly() -> None:
            for _ in range(args.saves):
                state_file.save(path, sha, 0.0, streams)

        busy = asyncio.run(_wakeup_delays(threading.Thread(target=save_repeatedly), 0))
    idle = asyncio.run(_wakeup_delays(None, 2.0))
    print(
        f"{args.streams} streams: file {size / 1e6:.2f} MB, save {median(saves) * 1e3:.0f} ms, "
        f"load {median(loads) * 1e3:.0f} ms (median of 5)\n"
    )
    rows = [
        [
            name,
            f"{percentile(busy, pct):.2f}",
            f"{percentile(idle, pct):.2f}",
            f"{ratio(percentile(busy, pct), percentile(idle, pct)):.1f}x",
        ]
        for name, pct in (("p50", 50), ("p99", 99), ("max", 100))
    ]
    print("event loop: ms late waking from a 1 ms sleep")
    print(table(["", f"while saving ({args.saves}x)", "no save (baseline)", "ratio"], rows))


if __name__ == "__main__":
    main()
