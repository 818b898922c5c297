"""Test harness: a hub in this process, and a peer MQTT client that plays devices and watches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.mqtt.adapter import Adapter, Sink
from drivers.mqtt.service import MqttService
from hub import daemon, topics
from hub.bus import Bus
from hub.config import Config, MqttSection, parse_config
from hub.incident import Incident
from tests.broker import Broker

Match = Callable[[str, bytes], bool]

LEAK = "Kitchen Leak"
VALVE = "Main Valve"
SIREN = "Hall Siren"


def hub_config(broker: Broker, data_dir: Path, hub_id: str = "hub-test", **sections: Any) -> Config:
    """A config with one Zigbee leak sensor, one valve and one siren, on the test broker."""
    data: dict[str, Any] = {
        "hub": {"id": hub_id, "data_dir": str(data_dir), "log_level": "DEBUG"},
        "mqtt": {"host": broker.host, "port": broker.port},
        "leak": {"confirm_timeout_s": 0.5, "retries": 1},
        "store": {"flush_interval_s": 0.05},
        "devices": [
            {"id": "kitchen-leak", "adapter": "zigbee2mqtt", "name": LEAK, "location": "kitchen"},
            {"id": "main-valve", "adapter": "zigbee2mqtt", "name": VALVE, "role": "water_valve"},
            {"id": "hall-siren", "adapter": "zigbee2mqtt", "name": SIREN, "role": "siren"},
            {"id": "basement", "adapter": "native", "location": "basement"},
        ],
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(data)


class Peer:
    """An MQTT client that records everything on its subscriptions and waits for matches."""

    def __init__(self, broker: Broker, filters: list[str]) -> None:
        self._client = aiomqtt.Client(
            broker.host,
            broker.port,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        self._filters = filters
        self.broker = broker
        self.messages: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Peer:
        await self._stack.enter_async_context(self._client)
        for f in self._filters:
            await self._client.subscribe(f, qos=1)
        task = asyncio.create_task(self._read())
        self._stack.push_async_callback(_cancel, task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _read(self) -> None:
        async for m in self._client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append((m.topic.value, payload))
            self._changed.set()

    async def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self._client.publish(topic, body, qos=1, retain=retain)

    async def expect(self, match: Match, timeout: float = 5.0, start: int = 0) -> tuple[str, bytes]:
        """The first message from index `start` on that matches; waits for it up to `timeout`."""
        async with asyncio.timeout(timeout):
            index = start
            while True:
                while index < len(self.messages):
                    topic, payload = self.messages[index]
                    index += 1
                    if match(topic, payload):
                        return topic, payload
                self._changed.clear()
                await self._changed.wait()

    def count(self, match: Match) -> int:
        return sum(1 for t, p in self.messages if match(t, p))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task


def on(topic: str, **fields: Any) -> Match:
    """Match a topic and, optionally, JSON fields of its payload."""

    def match(t: str, p: bytes) -> bool:
        if t != topic:
            return False
        if not fields:
            return True
        try:
            data = json.loads(p)
        except ValueError:
            return False
        return isinstance(data, dict) and all(data.get(k) == v for k, v in fields.items())

    return match


def status_online(hub_id: str) -> Match:
    return lambda t, p: t == topics.hub_status(hub_id) and p == b"online"


@contextlib.asynccontextmanager
async def running_hub(
    config: Config, peer: Peer, options: daemon.Options | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the hub in this process until the block ends; enters once it said `online`."""
    broker = peer.broker
    task = asyncio.create_task(daemon.run(config, options or daemon.Options()))
    try:
        async with Peer(broker, [topics.hub_status(config.hub.id)]) as watcher:
            await watcher.expect(status_online(config.hub.id), timeout=10)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def z2m(name: str, leaf: str = "") -> str:
    return f"zigbee2mqtt/{name}" + (f"/{leaf}" if leaf else "")


async def play_valve(peer: Peer, name: str = VALVE, *, stuck: bool = False) -> None:
    """A Zigbee valve: obeys `/set` (unless `stuck`: then it stays open) and answers `/get`.

    Runs until cancelled; start it with `asyncio.create_task` beside the test.
    """
    state = "ON"
    index = 0
    commands = (z2m(name, "set"), z2m(name, "get"))
    while True:
        topic, payload = await peer.expect(lambda t, _p: t in commands, 60, index)
        index = peer.messages.index((topic, payload), index) + 1
        if topic.endswith("/set") and not stuck:
            state = json.loads(payload).get("state", state)
        await peer.publish(z2m(name), {"state": state, "linkquality": 100})


class FixedClock:
    """A clock standing still at `at` (readings are stamped with it)."""

    def __init__(self, at: float = 1000.0) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return 0.0


async def no_incidents() -> list[Incident]:
    return []


def mqtt_service(
    broker: Broker, hub_id: str, adapters: list[Adapter], sink: Sink, bus: Bus
) -> MqttService:
    """The MQTT service alone on `broker`: a clock standing at 1000.0, no incidents to publish."""
    return MqttService(
        config=MqttSection(host=broker.host, port=broker.port),
        hub_id=hub_id,
        adapters=adapters,
        sink=sink,
        bus=bus,
        clock=FixedClock(),
        retained_snapshot=no_incidents,
    )


class StepClock:
    """A wall clock that NTP may step, and a monotonic one that only moves forward."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 0.0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it is done."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until_or_hub_ends(awaitable: Awaitable[Any], hub: asyncio.Task[None]) -> Any:
    """`awaitable`'s result, failing at once with the hub's own error if the hub ends first."""
    waiting = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({waiting, hub}, return_when=asyncio.FIRST_COMPLETED)
        if hub.done():
            hub.result()
            pytest.fail("the hub stopped")
        return waiting.result()
    finally:
        await cancelled(waiting)


class HeldPause:
    """Stands for `hub.contained`'s pause before a restart: it tells when it began (`paused`)
    and ends only when the test says (`resume`), so a test looks at a stopped service."""

    def __init__(self) -> None:
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.paused.set()
        await self.resume.wait()
