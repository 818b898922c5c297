"""A hostile or broken LAN device answering the hub's `_mqtt._tcp` search over mDNS.

Any device can send an unsolicited PTR record `_mqtt._tcp.local. -> "Living Room Printer._ipp._tcp
.local."`: the name is no `_mqtt._tcp` service instance, and zeroconf refuses to resolve it
(`BadTypeInNameException`). The search must ignore it, say so once, and go on to the real broker;
the daemon must start. Real zeroconf instances on loopback play the devices; nothing waits on a
sleep (the rogue repeats its record on a period, as a chattering device does, until the hub has
seen it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from zeroconf import DNSOutgoing, DNSPointer, const
from zeroconf.asyncio import AsyncZeroconf

from hub import daemon, zeroconf_mdns
from hub.broker_locate import locate_broker
from hub.config import MqttSection, parse_config
from hub.zeroconf_mdns import MQTT_TYPE, SECURE_MQTT_TYPE, find_mqtt_broker
from tests.broker import Broker, free_port
from tests.helpers import LEAK, VALVE, Peer, cancelled, on, status_online, until_or_hub_ends, z2m
from tests.test_zeroconf import LOOPBACK, WAIT_S, LogEvents, announced, unique

ROGUE_TARGET = "Living Room Printer._ipp._tcp.local."
PERIOD_S = 0.05  # how often the rogue repeats its record (a period, not a wait)


@contextlib.asynccontextmanager
async def rogue(service_type: str = MQTT_TYPE, target: str = ROGUE_TARGET) -> AsyncIterator[None]:
    """A LAN device that keeps sending the unsolicited PTR `service_type -> target`."""
    aiozc = AsyncZeroconf(interfaces=LOOPBACK)

    async def chatter() -> None:
        while True:
            out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
            record = DNSPointer(service_type, const._TYPE_PTR, const._CLASS_IN, 4500, target)
            out.add_answer_at_time(record, 0)
            aiozc.zeroconf.async_send(out)
            await asyncio.sleep(PERIOD_S)

    task = asyncio.create_task(chatter())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await aiozc.async_close()


@pytest.fixture
def logs() -> Iterator[LogEvents]:
    with LogEvents.of("hub.zeroconf_mdns") as handler:
        yield handler


async def seen_or_ended(logs: LogEvents, text: str, task: asyncio.Task[object]) -> None:
    """Until a log record has `text`, or the task ended (its exception, if any, is raised)."""
    waiter = asyncio.create_task(logs.wait_for(text))
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the crash, if it crashed
            pytest.fail(f"{task.get_name()} ended before it logged {text!r}")
        waiter.result()
    finally:
        await cancelled(waiter)


@pytest.mark.parametrize("service_type", [MQTT_TYPE, SECURE_MQTT_TYPE])
async def test_a_ptr_to_a_name_of_another_type_is_ignored_and_the_search_goes_on(
    logs: LogEvents, service_type: str
) -> None:
    search = asyncio.create_task(find_mqtt_broker(WAIT_S * 2, interfaces=LOOPBACK))
    try:
        async with rogue(service_type):
            await seen_or_ended(logs, ROGUE_TARGET, search)
            assert not search.done()
            async with announced(MQTT_TYPE, unique("plain"), 1883):
                async with asyncio.timeout(WAIT_S):
                    found = await search
    finally:
        await cancelled(search)
    assert found == ("127.0.0.1", 1883)
    # Said once (the rogue repeated it dozens of times), at WARNING, with the reason.
    [record] = logs.matching(ROGUE_TARGET)
    assert record.levelno == logging.WARNING
    assert "ignored" in record.getMessage()


async def test_locate_broker_never_raises_for_what_the_lan_sends(
    logs: LogEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing but the rogue answers: the hub falls back to this machine, as with no answer."""
    monkeypatch.setattr(
        zeroconf_mdns, "find_mqtt_broker", functools.partial(find_mqtt_broker, interfaces=LOOPBACK)
    )
    port = free_port()  # nobody listens there
    async with rogue():
        locate = asyncio.create_task(locate_broker(MqttSection(port=port, discovery_timeout_s=1.0)))
        try:
            await seen_or_ended(logs, ROGUE_TARGET, locate)
            async with asyncio.timeout(WAIT_S):
                located = await locate
        finally:
            await cancelled(locate)
    assert (located.host, located.port) == ("127.0.0.1", port)


async def test_the_daemon_starts_on_the_broker_found_past_the_rogue(
    broker: Broker, tmp_path: Path, logs: LogEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[mqtt] host` unset, nothing on this machine's port: the daemon searches, meets the rogue
    first, ignores it, connects to the broker announced next and protects the home."""
    monkeypatch.setattr(
        zeroconf_mdns, "find_mqtt_broker", functools.partial(find_mqtt_broker, interfaces=LOOPBACK)
    )
    hub_id = unique("hub-mdns")
    config = parse_config(
        {
            "hub": {"id": hub_id, "data_dir": str(tmp_path)},
            "mqtt": {"port": free_port(), "discovery_timeout_s": 25.0},  # no host
            "zeroconf": {"announce": False},
            "anomaly": {"enabled": False},
            "store": {"flush_interval_s": 0.05},
            "devices": [
                {"id": "kitchen-leak", "adapter": "zigbee2mqtt", "name": LEAK},
                {
                    "id": "main-valve",
                    "adapter": "zigbee2mqtt",
                    "name": VALVE,
                    "role": "water_valve",
                },
            ],
        }
    )
    async with Peer(broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/status"]) as peer:
        async with rogue():
            hub = asyncio.create_task(daemon.run(config), name="daemon")
            try:
                await seen_or_ended(logs, ROGUE_TARGET, hub)
                async with announced(MQTT_TYPE, unique("mosquitto"), broker.port):
                    await until_or_hub_ends(
                        peer.expect(status_online(hub_id), timeout=WAIT_S * 2), hub
                    )
                start = len(peer.messages)
                await peer.publish(z2m(LEAK), {"water_leak": True})
                await until_or_hub_ends(
                    peer.expect(on(z2m(VALVE, "set"), state="OFF"), start=start), hub
                )
                assert not hub.done()
            finally:
                await cancelled(hub)
