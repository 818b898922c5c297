"""Leak-to-valve latency: sensor publish (QoS 1) → valve command received, hub vs a bare forwarder.

    python -m bench.leak_latency [--rounds 2] [--trials 200] [--rate 500]

Each trial: the sensor publishes `{"water_leak": true}` on `zigbee2mqtt/Leak 1`; the latency is
until a peer subscribed to `zigbee2mqtt/Valve 1/set` receives the command (both clocks are this
process's perf_counter). The valve peer answers `{"state":"OFF"}` at once, like a real valve. After
`--settle-ms` the sensor reports dry and then the valve open again, because the hub acts only on a
dry→wet transition, only commands valves not confirmed closed, and closes again a valve reported
open while the sensor is still wet; then a jittered gap.

Phases: idle, and loaded (a separate process publishing `--rate` native messages/s of 4 readings,
i.e. 2,000 readings/s by default, QoS 0, on a steady schedule). The floor is a bare paho process
that subscribes the leak topic only and publishes the valve command on receipt (so under load it
shares the machine and the broker with the load, but receives none of it).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho

from bench._common import (
    DRY,
    LEAK_TOPIC,
    READINGS_PER_MESSAGE,
    RULES_ONLY,
    WET,
    ValvePeer,
    connected_client,
    percentile,
    ratio,
    running_hub,
    running_peer,
    table,
    valve_peer,
)
from tests.broker import Broker, running_broker

TARGETS = ("hub", "floor")
LOADS = ("idle", "loaded")
_SETTLE_AFTER_START_S = 0.5


@dataclass(frozen=True)
class Options:
    rounds: int = 2
    trials: int = 200
    warmup: int = 5
    rate: float = 500.0
    settle_ms: float = 15.0
    gap_ms: float = 15.0
    timeout_s: float = 2.0
    load_warmup_s: float = 1.0
    seed: int = 1
    rules_only: bool = False  # the hub without its anomaly models


@dataclass
class Phase:
    target: str
    load: str
    round: int
    latencies_ms: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    cold_ms: float | None = None
    commands: int = 0
    reads: int = 0
    load_rate: float | None = None

    def stats(self) -> tuple[float, float, float]:
        return summary(self.latencies_ms)

    def slowest(self, n: int = 3) -> str:
        worst = sorted(zip(self.latencies_ms, self.indices, strict=True), reverse=True)[:n]
        return ", ".join(f"{ms:.2f} ms (#{i})" for ms, i in worst)


@dataclass
class Result:
    options: Options
    phases: list[Phase] = field(default_factory=list)
    hub_notes: list[str] = field(default_factory=list)

    def pooled(self, target: str, load: str) -> list[float]:
        return [
            ms for p in self.phases if (p.target, p.load) == (target, load) for ms in p.latencies_ms
        ]

    def missed(self, target: str) -> int:
        return sum(len(p.missed) for p in self.phases if p.target == target)


def summary(latencies_ms: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in ms."""
    return (
        percentile(latencies_ms, 50),
        percentile(latencies_ms, 99),
        percentile(latencies_ms, 100),
    )


# -- one phase ---------------------------------------------------------------------------------


def run_trials(
    sensor: paho.Client, valve: ValvePeer, phase: Phase, opts: Options, rng: random.Random
) -> None:
    commands_before, reads_before = valve.command_count(), valve.reads
    for trial in range(-opts.warmup, opts.trials):
        index = valve.command_count()
        sent = time.perf_counter()
        sensor.publish(LEAK_TOPIC, WET, qos=1)
        received = valve.wait_command(index, opts.timeout_s)
        if received is None:
            phase.missed.append(trial)
        elif trial >= 0:
            phase.latencies_ms.append((received - sent) * 1e3)
            phase.indices.append(trial)
        elif trial == -opts.warmup:
            phase.cold_ms = (received - sent) * 1e3
        time.sleep(opts.settle_ms / 1e3)  # let the hub take the valve's answer as confirmation
        # Dry first (acknowledged by the broker, which then forwards in order): the hub closes
        # again a valve reported open while the sensor is still wet.
        sensor.publish(LEAK_TOPIC, DRY, qos=1).wait_for_publish(opts.timeout_s)
        valve.report_open()
        time.sleep((opts.gap_ms + rng.uniform(0, opts.gap_ms)) / 1e3)
    time.sleep(0.2)  # late or repeated commands still count below
    phase.commands = valve.command_count() - commands_before
    phase.reads = valve.reads - reads_before


def run_phase(
    target: str,
    load: str,
    rnd: int,
    ctx: tuple[Broker, Path, paho.Client, ValvePeer],
    opts: Options,
    rng: random.Random,
) -> Phase:
    broker, workdir, sensor, valve = ctx
    phase = Phase(target, load, rnd)
    if load == "idle":
        run_trials(sensor, valve, phase, opts, rng)
    else:
        with running_peer("loadgen", broker, workdir, "--rate", str(opts.rate)) as gen:
            time.sleep(opts.load_warmup_s)
            run_trials(sensor, valve, phase, opts, rng)
        phase.load_rate = float(gen.stats.get("rate", float("nan")))
    p50, p99, worst = phase.stats()
    print(
        f"  round {rnd} {target:5} {load:6}: p50 {p50:.2f}  p99 {p99:.2f}  max {worst:.2f} ms"
        f"  missed {len(phase.missed)}  commands {phase.commands}  reads {phase.reads}"
        + (f"  load {phase.load_rate:.0f} msg/s" if phase.load_rate else "")
        + f"\n      slowest: {phase.slowest()}",
        flush=True,
    )
    return phase


@contextlib.contextmanager
def _target(name: str, broker: Broker, workdir: Path, result: Result) -> Iterator[None]:
    if name == "floor":
        with running_peer("forwarder", broker, workdir):
            time.sleep(_SETTLE_AFTER_START_S)
            yield
        return
    extra = RULES_ONLY if result.options.rules_only else ""
    with running_hub(broker, workdir, extra=extra) as hub:
        time.sleep(_SETTLE_AFTER_START_S)  # the hub reads the valve's state just after ready
        yield
    status = hub.status()
    result.hub_notes.append(
        f"hub {hub.hub_id}: ready in {hub.ready_s:.2f}s, messages {status['mqtt']['messages']}, "
        f"bus {status['bus']}, bad_input {status['bad_input']}, "
        f"readings written {status['store']['readings_written']}"
    )
    result.hub_notes.extend(f"  log: {line}" for line in hub.log_problems())


# -- the run -----------------------------------------------------------------------------------


def run(opts: Options) -> Result:
    result = Result(opts)
    rng = random.Random(opts.seed)
    print(
        f"leak→valve latency: {opts.trials} leaks per phase, {opts.rounds} round(s), load "
        f"{opts.rate:.0f} msg/s = {opts.rate * READINGS_PER_MESSAGE:.0f} readings/s",
        flush=True,
    )
    with (
        running_broker() as broker,
        tempfile.TemporaryDirectory(prefix="hg-bench-leak-") as tmp,
        connected_client("bench-sensor", broker) as sensor,
        valve_peer(broker) as valve,
    ):
        ctx = (broker, Path(tmp), sensor, valve)
        for rnd in range(1, opts.rounds + 1):
            order = TARGETS if rnd % 2 else TARGETS[::-1]  # alternate, to spread drift
            for target in order:
                with _target(target, broker, Path(tmp), result):
                    result.phases.extend(
                        run_phase(target, load, rnd, ctx, opts, rng) for load in LOADS
                    )
    report(result)
    return result


def report(result: Result) -> None:
    rows: list[list[object]] = []
    for load in LOADS:
        hub, floor = summary(result.pooled("hub", load)), summary(result.pooled("floor", load))
        for name, h, f in zip(("p50", "p99", "max"), hub, floor, strict=True):
            rows.append([f"{load} {name}", f"{h:.2f}", f"{f:.2f}", f"{ratio(h, f):.2f}x"])
    n = result.options.trials * result.options.rounds
    print(f"\nleak→valve latency, ms ({n} leaks per row, rounds pooled)")
    print(table(["phase", "hub", "floor", "hub/floor"], rows))
    colds = [
        f"{p.cold_ms:.2f}" for p in result.phases if p.target == "hub" and p.cold_ms is not None
    ]
    print(f"first leak of each phase (not in the figures above), hub: {', '.join(colds)} ms")
    print(
        f"missed (no command within {result.options.timeout_s:.0f}s): hub {result.missed('hub')}, "
        f"floor {result.missed('floor')}"
    )
    for note in result.hub_notes:
        print(note)


def main(argv: list[str] | None = None) -> None:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench.leak_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--trials", type=int, default=d.trials, help="leaks per phase")
    p.add_argument("--rate", type=float, default=d.rate, help="load, messages/s of 4 readings")
    p.add_argument("--settle-ms", type=float, default=d.settle_ms)
    p.add_argument("--gap-ms", type=float, default=d.gap_ms)
    p.add_argument(
        "--rules-only", action="store_true", help="run the hub with `[anomaly] enabled = false`"
    )
    a = p.parse_args(argv)
    run(
        Options(
            rounds=a.rounds,
            trials=a.trials,
            rate=a.rate,
            settle_ms=a.settle_ms,
            gap_ms=a.gap_ms,
            rules_only=a.rules_only,
        )
    )


if __name__ == "__main__":
    main()
