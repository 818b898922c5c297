"""A password file the hub cannot read at connect time is said and retried like a broker that is
down: it used to escape the MQTT loop and end the daemon (leak protection with it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.mqtt.adapter import BusSink
from drivers.mqtt.service import BROKER_BRIDGE_ID, MqttService
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.config import MqttSection
from hub.events import Availability
from tests.broker import Broker
from tests.helpers import FixedClock, no_incidents
from tests.task_support import background


async def test_a_password_file_gone_at_connect_time_is_retried_not_fatal(
    broker: Broker, tmp_path: Path
) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("hunter2hunter2\n")
    secret.chmod(0o600)
    config = MqttSection(host=broker.host, port=broker.port, username="hub", password_file=secret)
    secret.unlink()  # checked when the file was read; gone (or unreadable) when the hub connects
    bus = Bus()
    links = bus.subscribe("links", (Availability,), where=lambda a: a.device_id == BROKER_BRIDGE_ID)
    sink = BusSink(bus, BadInputLog())
    service = MqttService(
        config=config,
        hub_id="hub-credentials",
        adapters=[],
        sink=sink,
        bus=bus,
        clock=FixedClock(),
        retained_snapshot=no_incidents,
    )
    async with background(service.run()) as task:
        await asyncio.wait_for(links.wait(), 10)
        (down,) = links.drain()
        assert not down.online
        assert not task.done()  # said and retried, not raised
        secret.write_text("hunter2hunter2\n")  # the password file is back
        await asyncio.wait_for(service.ready.wait(), 30)
        assert service.connected
