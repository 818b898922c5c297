"""The simulator's I/O: one MQTT connection, one task per device, and a reconnect loop around it.

Everything a device says comes from the pure models (`models`, `payloads`); this module only
schedules reports, publishes them, and turns `/set` and `/get` messages into device behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import socket
from collections.abc import Awaitable, Callable

import aiomqtt

from drivers.mqtt.client import Client
from drivers.mqtt.z2m_topics import (
    z2m_availability,
    z2m_bridge_devices,
    z2m_bridge_state,
    z2m_device,
    z2m_get,
    z2m_set,
)
from drivers.simulator._bridge import bridge_devices
from drivers.simulator.devices import (
    HALL_SIREN,
    KITCHEN_LEAK,
    MAIN_VALVE,
    NATIVE,
    RETAINED_STATE,
    SIMULATED_DEVICES,
    JsonObject,
    Scenario,
    SimulatedDevice,
    native_devices,
    zigbee_devices,
)
from drivers.simulator.models import Model, World, build_models
from drivers.simulator.payloads import encode, siren_target, valve_target
from hub import topics
from hub.backoff import Backoff

log = logging.getLogger(__name__)

#: How long the simulated valve's motor takes to move, seconds.
MOTOR_DELAY_S = 0.2
#: Reconnect backoff (`hub.backoff`): first retry within 0.5 s, doubling to a 30 s cap, jittered.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
#: Connecting, and each subscribe or QoS 1 publish (until PUBACK), may take this long.
OPERATION_TIMEOUT_S = 10.0
#: How long a clean shutdown may spend telling the broker the devices are going offline.
GOODBYE_TIMEOUT_S = 1.0
#: Jitter on each report interval: ±10 %.
INTERVAL_JITTER = 0.1

_QOS = 1
_ONLINE = encode({"state": "online"})
_OFFLINE = encode({"state": "offline"})


async def run_simulator(
    *,
    host: str,
    port: int,
    scenario: Scenario = Scenario.LEAK,
    base_topic: str = "zigbee2mqtt",
    leak_after_s: float = 20.0,
    report_interval_s: float = 5.0,
    seed: int | None = None,
    motor_delay_s: float = MOTOR_DELAY_S,
) -> None:
    """Play the simulated house against the broker at `host:port` until cancelled.

    Reconnects (capped, jittered backoff) whenever the broker goes away; the house's state (valve
    position, leak, energy counter) survives reconnects. Cancellation is always re-raised.
    """
    if report_interval_s <= 0 or leak_after_s < 0 or motor_delay_s < 0:
        raise ValueError("report_interval_s must be > 0; leak_after_s and motor_delay_s >= 0")
    loop = asyncio.get_running_loop()
    house = _House(
        scenario=scenario,
        base=base_topic,
        leak_at=loop.time() + leak_after_s if scenario.leaks else math.inf,
        interval=report_interval_s,
        motor_delay=motor_delay_s,
        seed=seed,
    )
    backoff = Backoff(initial=RECONNECT_MIN_S, cap=RECONNECT_MAX_S)
    log.info(
        "simulator: scenario %s, broker %s:%s, base topic %r", scenario, host, port, base_topic
    )
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout(OPERATION_TIMEOUT_S):
                    client = await stack.enter_async_context(_client(host, port, base_topic))
                log.info("simulator: connected to %s:%s", host, port)
                backoff.reset()
                session = _Session(house, client)
                try:
                    await session.run()
                except asyncio.CancelledError:
                    await session.goodbye()
                    raise
        except* (aiomqtt.MqttError, TimeoutError) as group:
            log.log(
                logging.WARNING if backoff.failures == 0 else logging.DEBUG,
                "simulator: broker %s:%s unavailable (%s); retrying",
                host,
                port,
                group.exceptions[0],
            )
        await asyncio.sleep(backoff.next_delay())


def _client(host: str, port: int, base: str) -> Client:
    # timeout=inf: aiomqtt then awaits its futures directly instead of through Python 3.11's
    # asyncio.wait_for, which loses a cancellation that lands as the awaited reply arrives
    # (cpython gh-86296) and left the simulator running after `cancel()`. Our own
    # asyncio.timeout() bounds every call instead.
    return Client(
        host,
        port,
        identifier=f"homeguard-simulator-{secrets.token_hex(4)}",
        will=aiomqtt.Will(z2m_bridge_state(base), _OFFLINE, qos=_QOS, retain=True),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        keepalive=30,
        max_queued_incoming_messages=256,
        timeout=math.inf,
    )


class _House:
    """What outlives a connection: the world, the device models, the clock of the scenario."""

    def __init__(
        self,
        *,
        scenario: Scenario,
        base: str,
        leak_at: float,
        interval: float,
        motor_delay: float,
        seed: int | None,
    ) -> None:
        self.scenario = scenario
        self.base = base
        self.leak_at = leak_at
        self.interval = interval
        self.motor_delay = motor_delay
        self.world = World()
        self.models: dict[str, Model] = build_models(seed)
        self.schedule = random.Random(f"{seed}:schedule") if seed is not None else random.Random()
        self.last_report: dict[str, float] = {}

    def step(self, device: SimulatedDevice, now: float) -> JsonObject:
        """Advance the world to `now` and return what `device` reports."""
        if not self.world.leaking and now >= self.leak_at:
            self.world.leaking = True
            log.info("simulator: water is leaking at %r", KITCHEN_LEAK.name)
        dt = now - self.last_report.get(device.id, now)
        self.last_report[device.id] = now
        return self.models[device.id].report(self.world, dt)

    def first_delay(self, device: SimulatedDevice) -> float:
        """Retained states are re-stated at once; the others start at their own phase."""
        return 0.0 if device.id in RETAINED_STATE else self.schedule.uniform(0, self.interval)

    def next_delay(self, device: SimulatedDevice, now: float) -> float:
        jitter = self.schedule.uniform(1 - INTERVAL_JITTER, 1 + INTERVAL_JITTER)
        delay = self.interval * jitter
        if device is KITCHEN_LEAK and not self.world.leaking:
            delay = min(delay, max(0.0, self.leak_at - now))
        return delay

    def state_topic(self, device: SimulatedDevice) -> str:
        if device.adapter == NATIVE:
            return topics.native_state(device.id)
        return z2m_device(self.base, device.name)


class _Session:
    """One connection's worth of work: announce, then report and obey until the link drops."""

    def __init__(self, house: _House, client: aiomqtt.Client) -> None:
        self._house = house
        self._client = client
        self._loop = asyncio.get_running_loop()
        # Commands never drop: a full queue makes the dispatcher wait.
        self._valve_commands: asyncio.Queue[bool] = asyncio.Queue(maxsize=8)
        base = house.base
        self._handlers: dict[str, Callable[[bytes], Awaitable[None]]] = {
            z2m_set(base, MAIN_VALVE.name): self._on_valve_set,
            z2m_get(base, MAIN_VALVE.name): self._on_get_valve,
            z2m_set(base, HALL_SIREN.name): self._on_siren_set,
            z2m_get(base, HALL_SIREN.name): self._on_get_siren,
        }

    async def run(self) -> None:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            await self._client.subscribe([(topic, _QOS) for topic in self._handlers])
        await self._announce()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._dispatch(), name="simulator-dispatch")
            tg.create_task(self._valve_motor(), name="simulator-valve-motor")
            for device in SIMULATED_DEVICES:
                tg.create_task(self._report_loop(device), name=f"simulator-{device.id}")

    async def goodbye(self) -> None:
        """On a clean stop, say offline as Zigbee2MQTT does (best effort, bounded)."""
        base = self._house.base
        offline = topics.OFFLINE.encode()
        bye = [(z2m_bridge_state(base), _OFFLINE)]
        bye += [(topics.native_availability(d.id), offline) for d in native_devices()]
        try:
            async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                for topic, payload in bye:
                    await self._client.publish(topic, payload, qos=_QOS, retain=True)
        except (aiomqtt.MqttError, TimeoutError) as err:
            log.debug("simulator: could not say goodbye: %s", err)

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            await self._client.publish(topic, payload, qos=_QOS, retain=retain)

    async def _announce(self) -> None:
        base = self._house.base
        await self._publish(z2m_bridge_state(base), _ONLINE, retain=True)
        await self._publish(z2m_bridge_devices(base), encode(bridge_devices()), retain=True)
        for device in zigbee_devices():
            await self._publish(z2m_availability(base, device.name), _ONLINE, retain=True)
        for device in native_devices():
            online = topics.ONLINE.encode()
            await self._publish(topics.native_availability(device.id), online, retain=True)

    async def _report(self, device: SimulatedDevice) -> None:
        payload = self._house.step(device, self._loop.time())
        topic = self._house.state_topic(device)
        await self._publish(topic, encode(payload), retain=device.id in RETAINED_STATE)
        log.debug("simulator: %s %s", topic, payload)

    async def _report_loop(self, device: SimulatedDevice) -> None:
        await asyncio.sleep(self._house.first_delay(device))
        while True:
            await self._report(device)
            await asyncio.sleep(self._house.next_delay(device, self._loop.time()))

    async def _dispatch(self) -> None:
        async for message in self._client.messages:
            handler = self._handlers.get(message.topic.value)
            if handler is not None and isinstance(message.payload, bytes | bytearray):
                await handler(bytes(message.payload))

    async def _on_valve_set(self, payload: bytes) -> None:
        target = valve_target(payload, is_open=self._house.world.valve_open)
        if target is None:
            log.debug("simulator: valve ignores %r", payload)
        elif self._house.scenario is Scenario.STUCK_VALVE:
            log.info("simulator: %r is stuck open and ignores %r", MAIN_VALVE.name, payload)
        else:
            await self._valve_commands.put(target)

    async def _valve_motor(self) -> None:
        while True:
            target = await self._valve_commands.get()
            world = self._house.world
            if target != world.valve_open:
                await asyncio.sleep(self._house.motor_delay)
                world.valve_open = target
                log.info("simulator: %r is %s", MAIN_VALVE.name, "open" if target else "closed")
            await self._report(MAIN_VALVE)

    async def _on_get_valve(self, payload: bytes) -> None:
        await self._report(MAIN_VALVE)

    async def _on_siren_set(self, payload: bytes) -> None:
        target = siren_target(payload)
        if target is None:
            log.debug("simulator: siren ignores %r", payload)
            return
        self._house.world.siren_on = target
        log.info("simulator: %r is %s", HALL_SIREN.name, "sounding" if target else "silent")
        await self._report(HALL_SIREN)

    async def _on_get_siren(self, payload: bytes) -> None:
        await self._report(HALL_SIREN)
