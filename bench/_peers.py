"""The processes the benchmarks run beside the hub: baselines and load.

    python -m bench._peers KIND --port P --ready-topic T [options]

- `forwarder`: the floor of leak-to-valve latency; bare paho, subscribes the leak topic and
  publishes the valve command on each wet message.
- `loadgen`: native readings at a steady rate (QoS 0), spread over the load sensors.
- `paho-sub`, `aiomqtt-sub`: bare subscribers to the native readings and the leak topic; they only
  count, and answer a wet leak with the valve command (the end mark of the throughput run).

Each says it is ready by publishing retained `online` on T once subscribed (or connected, for
`loadgen`), and on SIGTERM prints one JSON line of counts on stdout and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import aiomqtt
import paho.mqtt.client as paho

from bench._common import (
    LEAK_TOPIC,
    LOAD_SENSORS,
    NATIVE_FILTER,
    ONLINE,
    VALVE_CLOSED,
    VALVE_SET,
    WET,
    paho_client,
    reading_payload,
    sensor_topic,
)

#: A loadgen more than this far behind its schedule skips ahead instead of bursting to catch up.
_MAX_BEHIND_S = 0.05


Stats = dict[str, float]


class _Stop(BaseException):
    """Raised by the SIGTERM handler to leave a blocking loop (a BaseException, like
    KeyboardInterrupt, because paho's loop swallows every Exception raised around its select)."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise _Stop


def _paho_connected(args: argparse.Namespace, name: str) -> paho.Client:
    client = paho_client(name)
    client.connect(args.host, args.port, keepalive=30)
    return client


# -- paho processes ----------------------------------------------------------------------------


def forwarder(args: argparse.Namespace, stats: Stats) -> None:
    stats.update(received=0, forwarded=0)

    def on_message(client: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        stats["received"] += 1
        if json.loads(msg.payload).get("water_leak") is True:
            client.publish(VALVE_SET, VALVE_CLOSED, qos=1)
            stats["forwarded"] += 1

    _run_paho_subscriber(args, "bench-forwarder", [LEAK_TOPIC], on_message)


def paho_sub(args: argparse.Namespace, stats: Stats) -> None:
    stats["received"] = 0

    def on_message(client: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        stats["received"] += 1
        if msg.topic == LEAK_TOPIC and msg.payload == WET:
            client.publish(VALVE_SET, VALVE_CLOSED, qos=1)

    _run_paho_subscriber(args, "bench-paho-sub", [NATIVE_FILTER, LEAK_TOPIC], on_message)


def _run_paho_subscriber(
    args: argparse.Namespace,
    name: str,
    topics: list[str],
    on_message: paho.CallbackOnMessage,
) -> None:
    client = _paho_connected(args, name)
    client.on_message = on_message
    client.on_subscribe = lambda c, *_: c.publish(args.ready_topic, ONLINE, qos=1, retain=True)
    client.subscribe([(t, 1) for t in topics])
    client.loop_forever()


def loadgen(args: argparse.Namespace, stats: Stats) -> None:
    """`--rate` messages/s, each of 4 readings, on a fixed schedule (not bursts), round the
    first `--sensors` load sensors."""
    count = max(1000, args.sensors)
    count += -count % args.sensors  # a whole number of rounds: every sensor as often as the next
    payloads = [(sensor_topic(i, args.sensors), reading_payload(i)) for i in range(count)]
    client = _paho_connected(args, "bench-loadgen")
    client.loop_start()
    client.publish(args.ready_topic, ONLINE, qos=1, retain=True)
    period = 1.0 / args.rate
    sent = skipped = 0
    started = next_at = time.perf_counter()
    try:
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -_MAX_BEHIND_S:
                skipped += 1
                next_at = time.perf_counter()
            topic, payload = payloads[sent % len(payloads)]
            client.publish(topic, payload, qos=0)
            sent += 1
            next_at += period
    finally:
        elapsed = time.perf_counter() - started
        stats.update(sent=sent, seconds=elapsed, rate=sent / elapsed, schedule_resets=skipped)


# -- aiomqtt -----------------------------------------------------------------------------------


def aiomqtt_sub(args: argparse.Namespace, stats: Stats) -> None:
    stats["received"] = 0

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with aiomqtt.Client(
            args.host,
            args.port,
            identifier="bench-aiomqtt-sub",
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        ) as client:
            await client.subscribe([(NATIVE_FILTER, 1), (LEAK_TOPIC, 1)])
            await client.publish(args.ready_topic, ONLINE, qos=1, retain=True)
            async for message in client.messages:
                stats["received"] += 1
                if message.topic.value == LEAK_TOPIC and message.payload == WET:
                    await client.publish(VALVE_SET, VALVE_CLOSED, qos=1)

    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


# -- command line ------------------------------------------------------------------------------

_KINDS: dict[str, Callable[[argparse.Namespace, Stats], None]] = {
    "forwarder": forwarder,
    "loadgen": loadgen,
    "paho-sub": paho_sub,
    "aiomqtt-sub": aiomqtt_sub,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench._peers", description=__doc__)
    p.add_argument("kind", choices=sorted(_KINDS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready-topic", required=True)
    p.add_argument("--rate", type=float, default=500.0, help="loadgen: messages per second")
    p.add_argument("--sensors", type=int, default=LOAD_SENSORS, help="loadgen: sensors it feeds")
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="aiomqtt-sub: event loop (the hub runs on uvloop)",
    )
    args = p.parse_args(argv)
    stats: Stats = {}
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        _KINDS[args.kind](args, stats)
    except (_Stop, asyncio.CancelledError):
        pass
    finally:
        print(json.dumps(stats), flush=True)  # the last line of stdout, even after an error


if __name__ == "__main__":
    main()
