"""Sustained throughput: native readings the hub processes end to end vs a bare aiomqtt subscriber.

    python -m bench.throughput [--messages 50000] [--rounds 3]

A paho publisher blasts N native messages (4 readings each, QoS 0) as fast as it can, then one wet
leak (QoS 1). Messages are processed in order, so the hub has processed all N when its valve
command arrives: N / (first publish → command) is its rate. The baseline is a bare aiomqtt
subscriber (`async for message in client.messages`, on uvloop like the hub) on the same broker,
which counts and answers the same leak with the same command. After the run the hub is stopped
(it writes its final health row) and `homeguard-hub status --json` gives its bus drops.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench._common import (
    LEAK_TOPIC,
    READINGS_PER_MESSAGE,
    WET,
    ValvePeer,
    connected_client,
    median,
    mib,
    ratio,
    reading_payload,
    running_hub,
    running_peer,
    sensor_topic,
    table,
    valve_peer,
    vm_hwm_bytes,
)
from tests.broker import Broker, running_broker

#: After the valve command, how long the hub's recorder gets to write what it has queued.
_RECORDER_CATCH_UP_S = 3.0


@dataclass(frozen=True)
class Options:
    messages: int = 50_000
    rounds: int = 3
    timeout_s: float = 120.0


@dataclass
class Run:
    target: str
    round: int
    seconds: float
    publish_seconds: float
    received: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def messages_per_s(self, n: int) -> float:
        return n / self.seconds


@dataclass
class Result:
    options: Options
    runs: list[Run] = field(default_factory=list)

    def rate(self, target: str) -> float:
        """Median messages/s over the rounds."""
        n = self.options.messages
        return median([r.messages_per_s(n) for r in self.runs if r.target == target])


def blast(
    publisher: paho.Client, valve: ValvePeer, batch: list[tuple[str, bytes]], timeout: float
) -> tuple[float, float]:
    """Publish the batch then a wet leak; returns (first publish → command, publishing) seconds."""
    index = valve.command_count()
    publish = publisher.publish
    started = time.perf_counter()
    for topic, payload in batch:
        publish(topic, payload, qos=0)
    publish(LEAK_TOPIC, WET, qos=1)
    handed_off = time.perf_counter()
    received = valve.wait_command(index, timeout)
    if received is None:
        raise RuntimeError(f"no valve command within {timeout:.0f}s of the blast")
    return received - started, handed_off - started


@contextlib.contextmanager
def _target(name: str, broker: Broker, workdir: Path, run: Run) -> Iterator[None]:
    """Run the target around the blast; fill in what it reports once it has stopped."""
    if name == "bare":
        with running_peer("aiomqtt-sub", broker, workdir) as peer:
            yield
        if "received" in peer.stats:
            run.received = int(peer.stats["received"]) - 1  # less the leak itself
        return
    with running_hub(broker, workdir) as hub:
        yield
        time.sleep(_RECORDER_CATCH_UP_S)
        run.notes["vm_hwm_mib"] = round(mib(vm_hwm_bytes(hub.pid)), 1)
    status = hub.status()
    run.received = int(status["mqtt"]["messages"])
    run.notes.update(
        bus=status["bus"],
        bad_input=status["bad_input"],
        readings_written=status["store"]["readings_written"],
        log=hub.log_problems(),
    )


def run(opts: Options) -> Result:
    result = Result(opts)
    n = opts.messages
    batch = [(sensor_topic(i), reading_payload(i)) for i in range(n)]
    print(
        f"throughput: {n} messages x {READINGS_PER_MESSAGE} readings, QoS 0 blast, "
        f"{opts.rounds} round(s)",
        flush=True,
    )
    with (
        running_broker() as broker,
        tempfile.TemporaryDirectory(prefix="hg-bench-thr-") as tmp,
        connected_client("bench-blaster", broker) as publisher,
        valve_peer(broker) as valve,
    ):
        for rnd in range(1, opts.rounds + 1):
            for target in ("bare", "hub") if rnd % 2 else ("hub", "bare"):
                r = Run(target, rnd, 0.0, 0.0)
                with _target(target, broker, Path(tmp), r):
                    time.sleep(0.5)  # the hub reads the valve's state just after ready
                    r.seconds, r.publish_seconds = blast(publisher, valve, batch, opts.timeout_s)
                result.runs.append(r)
                _print_run(r, n)
    report(result)
    return result


def _print_run(r: Run, n: int) -> None:
    rate = r.messages_per_s(n)
    print(
        f"  round {r.round} {r.target:4}: {r.seconds:.2f}s → {rate:,.0f} msg/s = "
        f"{rate * READINGS_PER_MESSAGE:,.0f} readings/s (publisher handed off in "
        f"{r.publish_seconds:.2f}s; received {r.received})",
        flush=True,
    )
    for key, value in r.notes.items():
        print(f"      {key}: {value}")


def report(result: Result) -> None:
    hub, bare = result.rate("hub"), result.rate("bare")
    rows = [
        ["messages/s", f"{hub:,.0f}", f"{bare:,.0f}", f"{ratio(hub, bare):.0%}"],
        [
            "readings/s",
            f"{hub * READINGS_PER_MESSAGE:,.0f}",
            f"{bare * READINGS_PER_MESSAGE:,.0f}",
            f"{ratio(hub, bare):.0%}",
        ],
    ]
    print(f"\nthroughput ({result.options.messages} messages, median of {result.options.rounds})")
    print(table(["", "hub", "bare aiomqtt", "hub/bare"], rows))


def main(argv: list[str] | None = None) -> None:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--messages", type=int, default=d.messages)
    p.add_argument("--rounds", type=int, default=d.rounds)
    a = p.parse_args(argv)
    run(Options(messages=a.messages, rounds=a.rounds))


if __name__ == "__main__":
    main()
