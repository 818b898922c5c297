"""Footprint: the hub's CPU and memory at a steady 2,000 readings/s, and its start-up time.

    python -m bench.footprint [--window 20] [--rate 500] [--starts 5] [--sensors 100]

CPU is the process's user+system time (all threads) over `--window` seconds of wall time, as a
percentage of one core, after `--warmup` seconds of load; the load is a separate process sending
`--rate` native messages/s of 4 readings (QoS 0) on a steady schedule, round `--sensors` native
sensors (each a stream per measurement: 400 streams by default, 500 at 125, the anomaly
models' stream cap). RSS is sampled with psutil
during the window; VmHWM (the kernel's peak, start-up included) and RssAnon (the resident memory
that is not shared libraries' file pages) are read at its end. The same is
measured, one after the other, for a bare paho subscriber and a bare aiomqtt subscriber (uvloop)
that only count the same messages.

Start-up: spawn → retained `online` on the hub's status topic (published once it has subscribed),
fresh data dir each time; the baseline is the bare aiomqtt subscriber spawned and signalling ready
the same way (after its subscription).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil  # type: ignore[import-untyped]  # no stubs installed here

from bench._common import (
    LOAD_SENSORS,
    READINGS_PER_MESSAGE,
    RULES_ONLY,
    median,
    mib,
    proc_status_bytes,
    ratio,
    running_hub,
    running_peer,
    table,
    vm_hwm_bytes,
)
from tests.broker import Broker, running_broker

TARGETS = ("hub", "hub-rules-only", "paho-sub", "aiomqtt-sub")
#: The hub as shipped runs the anomaly models; `hub-rules-only` is the same hub without them.
_HUB_EXTRA = {"hub": "", "hub-rules-only": RULES_ONLY}


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


@dataclass(frozen=True)
class Options:
    window_s: float = 20.0
    warmup_s: float = 3.0
    rate: float = 500.0
    starts: int = 5
    sample_s: float = 0.25
    sensors: int = LOAD_SENSORS


@dataclass
class Usage:
    target: str
    cpu_pct: float = float("nan")
    peak_rss: int = 0
    vm_hwm: int = 0
    rss_anon: int = 0
    load_rate: float = float("nan")
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    options: Options
    usage: dict[str, Usage] = field(default_factory=dict)
    startup_s: dict[str, list[float]] = field(default_factory=dict)

    def startup(self, target: str) -> float:
        return median(self.startup_s[target])


def sample(pid: int, window_s: float, every_s: float) -> tuple[float, list[int]]:
    """(CPU % of one core over the window, RSS samples in bytes)."""
    proc = psutil.Process(pid)
    cpu0, wall0 = proc.cpu_times(), time.perf_counter()
    rss: list[int] = []
    while time.perf_counter() - wall0 < window_s:
        rss.append(proc.memory_info().rss)
        time.sleep(every_s)
    cpu1, wall1 = proc.cpu_times(), time.perf_counter()
    busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return 100 * busy / (wall1 - wall0), rss


@contextlib.contextmanager
def _target(
    name: str, broker: Broker, workdir: Path, usage: Usage, sensors: int
) -> Iterator[_HasPid]:
    if name not in _HUB_EXTRA:
        with running_peer(name, broker, workdir) as peer:
            yield peer
        usage.notes["received"] = peer.stats.get("received")
        return
    with running_hub(broker, workdir, load_sensors=sensors, extra=_HUB_EXTRA[name]) as hub:
        yield hub
    status = hub.status()
    usage.notes.update(
        received=status["mqtt"]["messages"],
        bus_dropped={k: v["dropped"] for k, v in status["bus"].items() if v["dropped"]},
        bad_input=status["bad_input"],
        readings_written=status["store"]["readings_written"],
        log=hub.log_problems(),
    )


def under_load(name: str, broker: Broker, workdir: Path, opts: Options) -> Usage:
    usage = Usage(name)
    load = ("--rate", str(opts.rate), "--sensors", str(opts.sensors))
    with _target(name, broker, workdir, usage, opts.sensors) as proc:
        with running_peer("loadgen", broker, workdir, *load) as gen:
            time.sleep(opts.warmup_s)
            usage.cpu_pct, rss = sample(proc.pid, opts.window_s, opts.sample_s)
            usage.vm_hwm = vm_hwm_bytes(proc.pid)
            usage.rss_anon = proc_status_bytes(proc.pid, "RssAnon")
        usage.load_rate = float(gen.stats.get("rate", float("nan")))
    usage.peak_rss = max(rss)
    usage.notes["rss_window_mib"] = f"{mib(rss[0]):.1f} → {mib(rss[-1]):.1f}"
    print(
        f"  {name:11}: CPU {usage.cpu_pct:5.1f} %  peak RSS {mib(usage.peak_rss):5.1f} MiB  "
        f"VmHWM {mib(usage.vm_hwm):5.1f} MiB  (load {usage.load_rate:.0f} msg/s)  {usage.notes}",
        flush=True,
    )
    return usage


def startup_times(name: str, broker: Broker, workdir: Path, starts: int) -> list[float]:
    times: list[float] = []
    for _ in range(starts):
        if name == "hub":
            with running_hub(broker, workdir) as hub:
                times.append(hub.ready_s)
        else:
            with running_peer(name, broker, workdir) as peer:
                times.append(peer.ready_s)
    print(f"  start-up {name:11}: " + ", ".join(f"{t:.3f}" for t in times) + " s", flush=True)
    return times


def run(opts: Options) -> Result:
    result = Result(opts)
    print(
        f"footprint: {opts.rate:.0f} msg/s = {opts.rate * READINGS_PER_MESSAGE:.0f} readings/s, "
        f"{opts.window_s:.0f}s window after {opts.warmup_s:.0f}s warm-up, "
        f"{opts.sensors} sensors ({opts.sensors * READINGS_PER_MESSAGE} streams)",
        flush=True,
    )
    with running_broker() as broker, tempfile.TemporaryDirectory(prefix="hg-bench-fp-") as tmp:
        workdir = Path(tmp)
        for name in TARGETS:
            result.usage[name] = under_load(name, broker, workdir, opts)
        for name in ("hub", "aiomqtt-sub"):
            result.startup_s[name] = startup_times(name, broker, workdir, opts.starts)
    report(result)
    return result


def report(result: Result) -> None:
    u = result.usage
    hub, rules, paho_, aio = u["hub"], u["hub-rules-only"], u["paho-sub"], u["aiomqtt-sub"]
    rows: list[list[object]] = [
        [
            "CPU % of one core",
            *(f"{x.cpu_pct:.1f}" for x in (hub, rules, paho_, aio)),
            f"{ratio(hub.cpu_pct, paho_.cpu_pct):.1f}x",
            f"{ratio(hub.cpu_pct, aio.cpu_pct):.1f}x",
        ],
        [
            "peak RSS sampled, MiB",
            *(f"{mib(x.peak_rss):.1f}" for x in (hub, rules, paho_, aio)),
            f"{ratio(hub.peak_rss, paho_.peak_rss):.1f}x",
            f"{ratio(hub.peak_rss, aio.peak_rss):.1f}x",
        ],
        [
            "VmHWM, MiB",
            *(f"{mib(x.vm_hwm):.1f}" for x in (hub, rules, paho_, aio)),
            f"{ratio(hub.vm_hwm, paho_.vm_hwm):.1f}x",
            f"{ratio(hub.vm_hwm, aio.vm_hwm):.1f}x",
        ],
        [
            "anonymous RSS at the end, MiB",
            *(f"{mib(x.rss_anon):.1f}" for x in (hub, rules, paho_, aio)),
            f"{ratio(hub.rss_anon, paho_.rss_anon):.1f}x",
            f"{ratio(hub.rss_anon, aio.rss_anon):.1f}x",
        ],
        [
            f"start-up to ready, s (median of {result.options.starts})",
            f"{result.startup('hub'):.3f}",
            "-",
            "-",
            f"{result.startup('aiomqtt-sub'):.3f}",
            "-",
            f"{ratio(result.startup('hub'), result.startup('aiomqtt-sub')):.1f}x",
        ],
    ]
    print(f"\nfootprint at {result.options.rate * READINGS_PER_MESSAGE:.0f} readings/s")
    head = ["", "hub", "hub, rules only", "bare paho", "bare aiomqtt", "hub/paho", "hub/aiomqtt"]
    print(table(head, rows))


def main(argv: list[str] | None = None) -> None:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench.footprint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--window", type=float, default=d.window_s, help="CPU window, seconds")
    p.add_argument("--warmup", type=float, default=d.warmup_s)
    p.add_argument("--rate", type=float, default=d.rate, help="load, messages/s of 4 readings")
    p.add_argument("--starts", type=int, default=d.starts)
    p.add_argument("--sensors", type=int, default=d.sensors, help="native load sensors")
    a = p.parse_args(argv)
    opts = Options(a.window, a.warmup, a.rate, a.starts, sensors=a.sensors)
    run(opts)


if __name__ == "__main__":
    main()
