"""The broker link drops right after the broker acknowledged the hub's subscriptions, while
commands wait to go out (at every start: each valve's state request). The real daemon, on a real
Mosquitto behind a TCP relay that hangs up the first connection there, must connect again and
close the valve on a leak, at once: it had looped for ever re-queueing the waiting commands (the
event loop held, nothing more sent), or waited out a PUBACK that could not come."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub import daemon
from hub.config import DeviceConfig
from tests.broker import Broker, free_port
from tests.helpers import LEAK, VALVE, Peer, hub_config, on, status_online, until_or_hub_ends, z2m
from tests.task_support import background

#: A regression holds the event loop: pytest-timeout is then what ends the test.
pytestmark = pytest.mark.timeout(30)

_SUBACK = 0x90


async def _packets(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """MQTT control packets, whole, as the broker sends them."""
    while True:
        head = await reader.readexactly(1)
        length, scale, raw = 0, 1, b""
        while True:
            byte = await reader.readexactly(1)
            raw += byte
            length += (byte[0] & 0x7F) * scale
            scale *= 128
            if not byte[0] & 0x80:
                break
        yield head + raw + await reader.readexactly(length)


class HangUpAfterSuback:
    """A TCP relay to the broker that closes its first connection right after the SUBACK."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = free_port()
        self.connections = 0

    async def _relay(self, hub_in: asyncio.StreamReader, hub_out: asyncio.StreamWriter) -> None:
        self.connections += 1
        hang_up = self.connections == 1
        broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.broker_port)

        async def upstream() -> None:
            try:
                while data := await hub_in.read(65536):
                    broker_out.write(data)
                    await broker_out.drain()
            except OSError:
                pass
            broker_out.close()

        async def downstream() -> None:
            try:
                async for packet in _packets(broker_in):
                    hub_out.write(packet)
                    await hub_out.drain()
                    if hang_up and packet[0] & 0xF0 == _SUBACK:
                        break
            except (asyncio.IncompleteReadError, OSError):
                pass
            hub_out.close()
            broker_out.close()

        await asyncio.gather(upstream(), downstream())

    async def serve(self) -> None:
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()


@pytest.mark.parametrize("valves", [1, 2])
async def test_a_link_dropped_with_commands_waiting_connects_again(
    own_broker: Broker, tmp_path: Path, valves: int
) -> None:
    """One valve: its state request went into paho's buffer, and the hub's "online" publish
    then waited for a PUBACK on the dead link for the 10 s I/O timeout. Two: the second request
    met the closed link and was queued again, for ever."""
    relay = HangUpAfterSuback(own_broker.port)
    hub_id = "hub-link-drop"
    config = hub_config(
        own_broker,
        tmp_path / "data",
        hub_id=hub_id,
        mqtt={"port": relay.port},  # through the relay
        zeroconf={"announce": False},
    )
    if valves == 2:
        heater = DeviceConfig(id="heater", adapter="zigbee2mqtt", name="Heater", role="water_valve")
        config = config.model_copy(update={"devices": [*config.devices, heater]})
    async with background(relay.serve(), name="relay"):
        async with Peer(own_broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/#"]) as peer:
            hub = asyncio.create_task(daemon.run(config))
            try:
                # Well inside the I/O timeout (10 s) that the one-valve case used to wait for.
                await until_or_hub_ends(peer.expect(status_online(hub_id), timeout=5), hub)
                assert relay.connections >= 2  # it connected again after the hang-up
                await peer.publish(z2m(LEAK), {"water_leak": True})
                await until_or_hub_ends(
                    peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=10), hub
                )
            finally:
                hub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
