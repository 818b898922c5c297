"""mDNS on loopback with real zeroconf instances: broker discovery and the hub's announcement.

Every test stays on 127.0.0.1 (a second AsyncZeroconf plays the other devices on the LAN) and
waits on events, never on sleeps; the guards fail a test that leaks a thread or a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import ifaddr
import psutil
import pytest
from pydantic import ValidationError
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.backoff import Backoff
from hub.broker_locate import locate_broker
from hub.config import MqttSection, TlsSection
from hub.zeroconf_mdns import (
    HUB_TYPE,
    MQTT_TYPE,
    SECURE_MQTT_TYPE,
    HubAnnouncer,
    find_mqtt_broker,
)
from tests.broker import Broker, make_certificates

LOOPBACK = ["127.0.0.1"]
WAIT_S = 10.0  # generous bound on things that do happen (they take about a second)
LOGGER = "hub.zeroconf_mdns"
MDNS_PORT = 5353


# -- guards ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before]
    assert leaked == [], f"threads left running: {leaked}"


def mdns_sockets() -> list[str]:
    """This process's UDP sockets on the mDNS port (each zeroconf instance holds at least two)."""
    udp = psutil.Process().net_connections(kind="udp")
    return sorted(f"fd {c.fd} {c.laddr}" for c in udp if c.laddr and c.laddr.port == MDNS_PORT)


@pytest.fixture(autouse=True)
async def no_leaked_tasks_or_sockets() -> AsyncIterator[None]:
    before = mdns_sockets()
    yield
    await asyncio.sleep(0)  # one loop turn: a closed transport drops its socket in call_soon
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    assert left == [], f"tasks left running: {left}"
    assert mdns_sockets() == before, "a zeroconf instance was left open"


@pytest.fixture
def not_here() -> list[str]:
    """An address no interface of this machine has (from the documentation ranges)."""
    local = {ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips}
    for candidate in ("203.0.113.254", "198.51.100.254", "192.0.2.254"):
        if candidate not in local:
            return [candidate]
    pytest.fail(f"every documentation address is local here: {sorted(map(str, local))}")


# -- helpers --------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def announced(
    type_: str, instance: str, port: int, addresses: tuple[str, ...] = ("127.0.0.1",)
) -> AsyncIterator[None]:
    """Another device on the LAN announcing `instance.type_` at addresses:port (over loopback)."""
    aiozc = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        info = AsyncServiceInfo(
            type_,
            f"{instance}.{type_}",
            port=port,
            properties={"note": "test"},
            server=f"{instance}.local.",
            addresses=list(addresses),
        )
        await (await aiozc.async_register_service(info))
        yield
    finally:
        await aiozc.async_close()


class Watcher:
    """A browser on a second instance, its callbacks turned into a stream of (state, name)."""

    def __init__(self, aiozc: AsyncZeroconf) -> None:
        self.aiozc = aiozc
        self.events: asyncio.Queue[tuple[ServiceStateChange, str]] = asyncio.Queue()

    def on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        self.events.put_nowait((state_change, name))

    async def wait_for(self, state: ServiceStateChange, name: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while await self.events.get() != (state, name):
                pass

    async def resolve(self, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(HUB_TYPE, name)
        assert await info.async_request(self.aiozc.zeroconf, 3000), f"{name} did not resolve"
        return info


@pytest.fixture
async def watcher() -> AsyncIterator[Watcher]:
    aiozc = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        w = Watcher(aiozc)
        async with AsyncServiceBrowser(aiozc.zeroconf, HUB_TYPE, handlers=[w.on_change]):
            yield w
    finally:
        await aiozc.async_close()


class LogEvents(logging.Handler):
    """The module's log records, with a way to wait until one matching a text arrives."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]

    async def wait_for(self, text: str, count: int = 1) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.matching(text)) < count:
                self._changed.clear()
                await self._changed.wait()

    @classmethod
    @contextlib.contextmanager
    def of(cls, name: str) -> Iterator[LogEvents]:
        """The records of logger `name` (DEBUG and up) while the block runs."""
        handler = cls()
        logger = logging.getLogger(name)
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)


@pytest.fixture
def logs() -> Iterator[LogEvents]:
    with LogEvents.of(LOGGER) as handler:
        yield handler


# -- find_mqtt_broker -----------------------------------------------------------------------


async def test_finds_an_announced_broker() -> None:
    async with announced(MQTT_TYPE, unique("mosquitto"), 18883):
        found = await find_mqtt_broker(WAIT_S, interfaces=LOOPBACK)
    assert found == ("127.0.0.1", 18883)


async def test_prefers_the_ipv4_address_of_a_dual_stack_broker() -> None:
    async with announced(MQTT_TYPE, unique("dual"), 1883, ("fd00::1883", "192.0.2.83")):
        found = await find_mqtt_broker(WAIT_S, interfaces=LOOPBACK)
    assert found == ("192.0.2.83", 1883)


async def test_nothing_announced_is_none_within_the_timeout() -> None:
    started = time.monotonic()
    found = await find_mqtt_broker(0.5, interfaces=LOOPBACK)
    elapsed = time.monotonic() - started
    assert found is None
    assert 0.5 <= elapsed < 2.0, elapsed


async def test_a_tls_broker_is_reported_but_not_used(logs: LogEvents) -> None:
    secure = unique("secure")
    search = asyncio.create_task(find_mqtt_broker(WAIT_S * 2, interfaces=LOOPBACK))
    try:
        async with announced(SECURE_MQTT_TYPE, secure, 8883):
            await logs.wait_for(f"TLS broker {secure}.{SECURE_MQTT_TYPE} at 127.0.0.1:8883")
            assert not search.done(), "a _secure-mqtt._tcp broker must not be auto-used"
            async with announced(MQTT_TYPE, unique("plain"), 1883):
                async with asyncio.timeout(WAIT_S):
                    found = await search
    finally:
        search.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await search
    assert found == ("127.0.0.1", 1883)
    [record] = logs.matching("TLS broker")
    assert record.levelno == logging.INFO
    assert "[mqtt.tls]" in record.getMessage()


async def test_no_network_is_none_not_an_error(logs: LogEvents, not_here: list[str]) -> None:
    assert await find_mqtt_broker(WAIT_S, interfaces=not_here) is None
    [record] = logs.matching("cannot look for an MQTT broker")
    assert record.levelno == logging.WARNING


# -- HubAnnouncer ---------------------------------------------------------------------------


async def test_announces_id_and_version_then_withdraws(watcher: Watcher) -> None:
    hub_id = unique("hub")
    announcer = HubAnnouncer(hub_id, "1.2.3", interfaces=LOOPBACK)
    name = f"{hub_id}.{HUB_TYPE}"
    assert announcer.service_name == name

    async with announcer:
        announced_inside = announcer.announced
        await watcher.wait_for(ServiceStateChange.Added, name)
        info = await watcher.resolve(name)
        assert info.decoded_properties == {"id": hub_id, "version": "1.2.3", "api": "1"}
        assert info.port == 0  # the hub listens on no port of its own
        assert info.parsed_scoped_addresses() == ["127.0.0.1"]

    assert (announced_inside, announcer.announced) == (True, False)
    await watcher.wait_for(ServiceStateChange.Removed, name)


async def test_run_announces_until_cancelled(watcher: Watcher) -> None:
    hub_id = unique("hub")
    name = f"{hub_id}.{HUB_TYPE}"
    task = asyncio.create_task(HubAnnouncer(hub_id, "0.1.0", port=8123, interfaces=LOOPBACK).run())
    try:
        await watcher.wait_for(ServiceStateChange.Added, name)
        assert (await watcher.resolve(name)).port == 8123
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await watcher.wait_for(ServiceStateChange.Removed, name)


async def test_a_name_taken_by_another_device_is_a_warning_not_a_crash(logs: LogEvents) -> None:
    hub_id = unique("hub")
    async with announced(HUB_TYPE, hub_id, 0):
        async with HubAnnouncer(hub_id, "0.1.0", interfaces=LOOPBACK) as announcer:
            assert not announcer.announced
    [record] = logs.matching("cannot announce")
    assert record.levelno == logging.WARNING
    assert "another device already announces this name" in record.getMessage()


async def test_an_unexpected_error_while_announcing_says_goodbye_and_closes(
    watcher: Watcher, logs: LogEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zeroconf (the library boundary) fails in a way nobody expected just after the name was
    claimed: the announcer withdraws the name and closes its sockets before the error goes on,
    so the next start (`hub.contained` starts it again) claims the name as its own."""
    hub_id = unique("hub")
    name = f"{hub_id}.{HUB_TYPE}"
    real = AsyncZeroconf.async_register_service
    failures = 0

    async def register_then_fail(self: AsyncZeroconf, info: AsyncServiceInfo) -> object:
        nonlocal failures
        announcing = await real(self, info)
        if failures == 0:
            failures += 1
            await announcing
            raise RuntimeError("zeroconf: something nobody expected")
        return announcing

    monkeypatch.setattr(AsyncZeroconf, "async_register_service", register_then_fail)
    announcer = HubAnnouncer(hub_id, "0.1.0", interfaces=LOOPBACK)
    with pytest.raises(RuntimeError, match="nobody expected"):
        async with announcer:
            pass
    await watcher.wait_for(ServiceStateChange.Removed, name)  # the goodbye went out
    assert not announcer.announced
    async with announcer:  # started again: the name is free, not "a second hub"
        assert announcer.announced
    assert not logs.matching("cannot announce")


async def test_without_network_it_warns_once_and_keeps_trying(
    logs: LogEvents, not_here: list[str]
) -> None:
    announcer = HubAnnouncer(
        unique("hub"), "0.1.0", interfaces=not_here, backoff=Backoff(initial=0.01, cap=0.01)
    )
    task = asyncio.create_task(announcer.run())
    try:
        await logs.wait_for("cannot announce", count=3)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    levels = [r.levelno for r in logs.matching("cannot announce")]
    assert levels[0] == logging.WARNING
    assert set(levels[1:]) == {logging.DEBUG}
    assert not announcer.announced


# -- how the daemon picks its broker when [mqtt] names none ----------------------------------


async def test_a_named_broker_is_used_as_named() -> None:
    named = MqttSection(host="broker.lan", port=1884)
    assert await locate_broker(named) == named


async def test_a_broker_listening_on_this_machine_comes_first(broker: Broker) -> None:
    located = await locate_broker(MqttSection(port=broker.port))
    assert (located.host, located.port) == ("127.0.0.1", broker.port)


async def test_with_no_broker_anywhere_the_hub_keeps_trying_this_machine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    located = await locate_broker(MqttSection(port=port, discovery_timeout_s=0.3))
    assert (located.host, located.port) == ("127.0.0.1", port)
    assert "none announced on the LAN" in caplog.text


def test_tls_needs_an_explicit_host(tmp_path: Path) -> None:
    make_certificates(tmp_path)
    ca = tmp_path / "ca.pem"
    with pytest.raises(ValidationError, match=r"\[mqtt.tls\] needs an explicit `host`"):
        MqttSection(tls=TlsSection(ca_file=ca))
