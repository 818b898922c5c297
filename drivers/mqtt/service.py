"""The MQTT link: one connection, reconnected with capped jittered backoff, feeding the adapters.

Received messages are decoded inside paho's message callback, straight into the bus: measured on
this machine, aiomqtt's `async for` path (a `Message` object, a queue hop and a task switch per
message) costs more CPU than the whole decode, and the hub's budget is 15 % of a core at 2,000
readings/s. The boundary to the rest of the hub is still a bounded queue: the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from drivers.mqtt.adapter import Adapter, Outgoing, Sink
from drivers.mqtt.client import Client
from drivers.mqtt.topic_check import check_filter
from hub import topics
from hub.backoff import Backoff
from hub.bus import Bus, Overflow, Subscription
from hub.clock import Clock
from hub.config import MqttSection
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, CommandSent, IncidentChanged
from hub.incident import Incident, to_json

_log = logging.getLogger(__name__)

#: The broker as a bridge: every MQTT device is unheard while the hub cannot reach it.
BROKER_BRIDGE_ID = "mqtt-broker"

_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
#: Commands kept while the broker is unreachable, sent on reconnect (oldest go first when full).
_MAX_UNSENT = 1000
#: Limit on connecting, subscribing and each awaited publish. Applied with `asyncio.timeout`, not
#: aiomqtt's own `timeout` (which goes through `asyncio.wait_for`, and on Python 3.11 that can
#: swallow a cancellation: cpython gh-86296).
_IO_TIMEOUT_S = 10.0


class _Client(Client):
    """aiomqtt's client with paho's message callback going straight to the hub's decoder."""

    def __init__(self, on_raw: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_raw = on_raw

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._on_raw(message.topic, message.payload)

    def send_now(self, out: Outgoing) -> None:
        """Publish and write to the socket in this step, without waiting for the event loop.

        aiomqtt hands paho's writes to the loop (`add_writer`), one turn later; for a valve
        command that turn is the difference between the hub and a bare forwarder. Only QoS >= 1:
        paho runs the on_publish callback of a QoS 0 message inside `loop_write`, under a lock
        that is already held when this is called from a message callback.
        """
        if out.qos < 1:
            raise ValueError("send_now publishes QoS 1 or 2 only")
        client = self._client
        # Without this, paho would also ask the loop (call_soon_threadsafe → add_writer) to write
        # what is written right here; on a link that closes meanwhile that stray request fails
        # with "Bad file descriptor". The loop is asked only for what the socket did not take.
        register = client.on_socket_register_write
        client.on_socket_register_write = None
        try:
            info = client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
            client.loop_write()
        finally:
            client.on_socket_register_write = register
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "could not publish")
        sock = client.socket()
        if client.want_write() and register is not None and sock is not None:
            register(client, client.user_data_get(), sock)

    def subscribe_now(self, topic_filter: str) -> None:
        """Send a SUBSCRIBE (QoS 1) without waiting for its SUBACK.

        For subscriptions learned from messages, inside paho's message callback, where awaiting is
        impossible. paho queues the packet and asks the loop to write it. aiomqtt logs a SUBACK it
        has no call for at ERROR, so the packet gets a future of its own that nobody awaits.
        """
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise aiomqtt.MqttCodeError(rc, "could not subscribe")
        self._pending_subscribes[mid] = self._loop.create_future()


class MqttService:
    def __init__(
        self,
        *,
        config: MqttSection,
        hub_id: str,
        adapters: list[Adapter],
        sink: Sink,
        bus: Bus,
        clock: Clock,
        retained_snapshot: Callable[[], Awaitable[list[Incident]]],
    ) -> None:
        self._config = config
        self._hub_id = hub_id
        self._adapters = adapters
        self._bus = bus
        self._sink = sink
        self._snapshot = retained_snapshot
        self._clock = clock
        self._outbound: Subscription[IncidentChanged] = bus.subscribe(
            "mqtt-out", (IncidentChanged,), maxsize=1000, overflow=Overflow.KEEP_ALL
        )
        bus.handle(Command, self.on_command)
        self._live: _Client | None = None
        #: The connected client from before its first SUBSCRIBE on: where `subscribe_later` goes.
        self._subscriber: _Client | None = None
        self._unsent: deque[Command] = deque(maxlen=_MAX_UNSENT)
        self.connected = False
        self._link_up: bool | None = None
        self.ready = asyncio.Event()
        self.messages = 0

    # -- receiving (paho's callback, on the event loop's thread) -------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        for adapter in self._adapters:
            if adapter.owns(topic):
                try:
                    adapter.decode(topic, payload, self._clock.now())
                except BadInputError as err:
                    self._sink.refuse(f"{adapter.name} {topic[:120]}", err)
                except Exception as err:  # noqa: BLE001  (a decoder bug must not take the link down)
                    _log.exception("%s adapter failed on %s", adapter.name, topic[:120])
                    self._sink.refuse(
                        f"{adapter.name} {topic[:120]}",
                        BadInputError(BadInputReason.WRONG_TYPE, f"decoder error: {err!r:.200}"),
                    )
                return

    # -- the connection ------------------------------------------------------------------------

    def _client(self) -> _Client:
        c = self._config
        tls = None
        if c.tls is not None:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(c.tls.ca_file) if c.tls.ca_file else None,
                certfile=str(c.tls.cert_file) if c.tls.cert_file else None,
                keyfile=str(c.tls.key_file) if c.tls.key_file else None,
            )
        return _Client(
            self.on_message,
            hostname=c.broker_host,
            port=c.port,
            username=c.username,
            password=c.password(),
            identifier=c.client_id or f"homeguard-{self._hub_id}",
            clean_session=False,
            keepalive=c.keepalive_s,
            will=aiomqtt.Will(topics.hub_status(self._hub_id), topics.OFFLINE, qos=1, retain=True),
            tls_params=tls,
            socket_options=_NODELAY,
            timeout=math.inf,
        )

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = Backoff(initial=0.5, cap=30.0)
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with asyncio.timeout(_IO_TIMEOUT_S):
                        client = await stack.enter_async_context(self._client())
                    await self._session(client, backoff)
            # OSError: a password file or TLS file the hub cannot read or use (ssl.SSLError is one)
            # is said and retried like a broker that is down: the leak path must not end with it.
            except* (aiomqtt.MqttError, TimeoutError, OSError) as group:
                err = group.exceptions[0]
                self._link(False)
                delay = backoff.next_delay()
                level = logging.WARNING if backoff.failures == 1 else logging.DEBUG
                _log.log(
                    level,
                    "MQTT broker %s:%d unreachable (%s); retrying in %.1fs",
                    self._config.broker_host,
                    self._config.port,
                    err,
                    delay,
                )
            else:
                self._link(False)
                delay = backoff.next_delay()
            await asyncio.sleep(delay)

    def _link(self, up: bool) -> None:
        """Track the broker link; each change is an `Availability` of the broker (a bridge)."""
        if self._link_up is not up:
            self._link_up = up
            self._bus.publish(Availability(BROKER_BRIDGE_ID, up, self._clock.now()))
        self.connected = up

    async def _session(self, client: _Client, backoff: Backoff) -> None:
        # Set before `filters()` is read: a topic an adapter learns from here on (a retained
        # discovery config arrives with the first SUBACK) goes out through `subscribe_later`.
        self._subscriber = client
        try:
            filters = self._filters()
            if filters:
                async with asyncio.timeout(_IO_TIMEOUT_S):
                    await client.subscribe([(f, 1) for f in filters])
            self._live = client
            await self._connected_session(client, backoff)
        finally:
            self._live = None
            self._subscriber = None

    def _filters(self) -> list[str]:
        """Every adapter's filters, less those MQTT does not allow (refused and counted).

        Mosquitto answers a SUBSCRIBE with such a filter by dropping the connection, and paho
        raises on one that is not UTF-8: one bad filter would keep every device unheard.
        """
        filters = []
        for adapter in self._adapters:
            for topic_filter in adapter.filters():
                try:
                    check_filter(topic_filter)
                except BadInputError as err:
                    self._sink.refuse(f"{adapter.name} {topic_filter!r:.120}", err)
                    continue
                filters.append(topic_filter)
        return filters

    def subscribe_later(self, topic_filter: str) -> None:
        """Subscribe to one more filter on the live connection, without waiting for the broker.

        For adapters that learn topics from what they receive (Home Assistant discovery); called
        from their `decode`. Without a connection it does nothing: the adapter's `filters()` lists
        the topic, and the next connection subscribes it with the rest. A filter MQTT does not
        allow raises `BadInputError` (BAD_TOPIC), connected or not, and is never sent: the
        adapter refuses what named it, and the link stays up.
        """
        check_filter(topic_filter)
        client = self._subscriber
        if client is None:
            return
        try:
            client.subscribe_now(topic_filter)
        except aiomqtt.MqttError as err:  # the link is going down; the next connection has it
            _log.debug("could not subscribe to %s now (%s)", topic_filter[:120], err)
        except ValueError as err:  # paho refused the filter itself: an adapter's bug
            _log.warning("cannot subscribe to %r: %s", topic_filter[:120], err)

    async def _connected_session(self, client: _Client, backoff: Backoff) -> None:
        # Commands that waited for the broker go first. Those taken now, once each: when the
        # link drops again meanwhile, `on_command` queues them anew for the next connection
        # (looping until the queue is empty would then never end, with the event loop held).
        waiting, self._unsent = self._unsent, deque(maxlen=_MAX_UNSENT)
        for command in waiting:
            self.on_command(command)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._announce_then_send(client, backoff))
                # Returns nothing; raises when the link drops, which ends the publishing task
                # too: a publish waiting for its PUBACK on a link that just dropped would
                # otherwise hold the reconnect for `_IO_TIMEOUT_S`.
                async for _ in client.messages:
                    pass
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(1):
                    await client.publish(
                        topics.hub_status(self._hub_id), topics.OFFLINE, qos=1, retain=True
                    )
            raise

    async def _announce_then_send(self, client: _Client, backoff: Backoff) -> None:
        """Say the hub is online and publish every incident again (the broker may have lost
        them in a restart), then publish incident changes as they come (after the snapshot, so
        a retained incident never goes back to an older revision)."""
        await self._publish(
            client, Outgoing(topics.hub_status(self._hub_id), topics.ONLINE.encode(), retain=True)
        )
        for incident in await self._snapshot():
            await self._publish_incident(client, incident)
        self._link(True)
        backoff.reset()
        _log.info("MQTT connected to %s:%d", self._config.broker_host, self._config.port)
        self.ready.set()
        await self._send_loop(client)

    # -- sending -------------------------------------------------------------------------------

    async def _send_loop(self, client: _Client) -> None:
        async with asyncio.TaskGroup() as tg:
            async for batch in self._outbound.batches():
                for event in batch:
                    tg.create_task(self._publish_incident(client, event.incident))

    def on_command(self, command: Command) -> None:
        """Carry out a command now (a direct bus handler: called in the step that published it)."""
        adapter = next((a for a in self._adapters if a.controls(command.device_id)), None)
        if adapter is None:
            self._sent(command, f"no adapter controls device {command.device_id!r}")
            return
        client = self._live
        if client is None:
            self._unsent.append(command)
            self._sent(command, "broker unreachable; it goes out on reconnect")
            return
        try:
            for out in adapter.encode(command):
                client.send_now(out)
        except aiomqtt.MqttError as err:
            self._unsent.append(command)
            self._sent(command, f"broker link lost ({err}); it goes out on reconnect")
            return
        self._sent(command, None)

    def _sent(self, command: Command, error: str | None) -> None:
        self._bus.publish(
            CommandSent(
                command.command_id,
                command.device_id,
                command.action,
                error is None,
                error,
                self._clock.now(),
            )
        )

    async def _publish_incident(self, client: _Client, incident: Incident) -> None:
        topic = topics.hub_incident(self._hub_id, incident.id)
        await self._publish(client, Outgoing(topic, to_json(incident), qos=1, retain=True))

    @staticmethod
    async def _publish(client: _Client, out: Outgoing) -> None:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            await client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
