"""Names no UTF-8 can hold: a lone UTF-16 surrogate (`"\\ud83d"`, valid JSON) from the LAN.

Zigbee2MQTT (JavaScript) writes a friendly name cut in the middle of an emoji as `\\ud83d`; any
device can put one in a Home Assistant discovery config. SQLite cannot store such a string, so
it once ended the recorder and with it the hub, at every start while the message stayed retained.
The hub reads each lone surrogate as U+FFFD (what the bridge itself puts in the device's topic),
keeps the device, and protects the home with it. Real Mosquitto, the real daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from hub import daemon, topics
from hub.config import Config
from hub.store import hubstate, open_database
from tests.broker import Broker
from tests.helpers import (
    LEAK,
    VALVE,
    Match,
    Peer,
    cancelled,
    hub_config,
    on,
    status_online,
    until_or_hub_ends,
    z2m,
)

BROKEN = "Bathroom leak \ufffd"  # what the hub makes of "Bathroom leak \ud83d"

# The retained `bridge/devices` as Zigbee2MQTT sends it (JSON.stringify escapes the lone half).
BRIDGE_DEVICES = (
    b'[{"type":"Coordinator","friendly_name":"Coordinator"},'
    b'{"type":"EndDevice","friendly_name":"' + LEAK.encode() + b'"},'
    b'{"type":"Router","friendly_name":"' + VALVE.encode() + b'"},'
    b'{"type":"EndDevice","friendly_name":"Bathroom leak \\ud83d",'
    b'"definition":{"model":"SJCGQ11LM \\udc00","exposes":[{"property":"water_leak"}]}}]'
)
HA_CONFIG_TOPIC = "homeassistant/binary_sensor/cellar/leak/config"
HA_STATE_TOPIC = "home/cellar/leak"
HA_CONFIG = (
    b'{"stat_t":"' + HA_STATE_TOPIC.encode() + b'","dev_cla":"moisture",'
    b'"uniq_id":"cellar_leak_\\ud83d","dev":{"ids":["cellar"],"mdl":"Leak \\uDE00 v2"}}'
)


@contextlib.asynccontextmanager
async def _hub(config: Config, peer: Peer) -> AsyncIterator[asyncio.Task[None]]:
    """The daemon until the block ends, entered once it said `online`; still running at the end."""
    task = asyncio.create_task(daemon.run(config), name="daemon")
    try:
        async with Peer(peer.broker, [f"homeguard/hub/{config.hub.id}/status"]) as watcher:
            await until_or_hub_ends(watcher.expect(status_online(config.hub.id), timeout=10), task)
        yield task
        assert not task.done(), "the hub stopped"
    finally:
        await cancelled(task)


def _config(broker: Broker, data_dir: Path, hub_id: str) -> Config:
    return hub_config(broker, data_dir, hub_id, zeroconf={"announce": False})


def _incident_with(hub_id: str, sensor: str) -> Match:
    prefix = topics.hub_incident(hub_id, "")

    def match(t: str, p: bytes) -> bool:
        return t.startswith(prefix) and bool(p) and sensor in json.loads(p)["sensors"]

    return match


async def test_a_retained_device_list_with_a_lone_surrogate_keeps_the_hub_and_the_device(
    own_broker: Broker, tmp_path: Path
) -> None:
    hub_id = "hub-z2m-surrogate"
    config = _config(own_broker, tmp_path, hub_id)
    async with Peer(own_broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/#"]) as peer:
        await peer.publish("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES, retain=True)
        async with _hub(config, peer) as hub:
            # The learned sensor, on the topic Zigbee2MQTT gives it, closes the valve...
            await peer.publish(z2m(BROKEN), {"water_leak": True})
            await until_or_hub_ends(peer.expect(on(z2m(VALVE, "set"), state="OFF")), hub)
            await until_or_hub_ends(peer.expect(_incident_with(hub_id, "z2m-bathroom-leak")), hub)
            # ...and a configured one, after it, is read as ever.
            await peer.publish(z2m(LEAK), {"water_leak": True})
            await until_or_hub_ends(peer.expect(_incident_with(hub_id, "kitchen-leak")), hub)

    db = open_database(tmp_path)
    row = db.execute(
        "SELECT name, model, origin FROM devices WHERE id = 'z2m-bathroom-leak'"
    ).fetchone()
    assert row == (BROKEN, "SJCGQ11LM \ufffd", "discovered")
    for device in ("z2m-bathroom-leak", "kitchen-leak"):
        readings = db.execute(
            "SELECT text FROM readings WHERE device_id = ? AND measurement = 'water_leak'", [device]
        ).fetchall()
        assert readings == [("true",)], device
    state = hubstate.read(db)
    assert not any("malformed_json" in k for k in state["bad_input"]), state["bad_input"]
    assert state["store"]["recorder_last_error"] is None


async def test_a_discovery_config_with_lone_surrogates_keeps_the_hub_and_the_entity(
    own_broker: Broker, tmp_path: Path
) -> None:
    config = _config(own_broker, tmp_path, "hub-ha-surrogate")
    async with Peer(own_broker, ["zigbee2mqtt/#"]) as peer:
        await peer.publish(HA_CONFIG_TOPIC, HA_CONFIG, retain=True)
        await peer.publish(HA_STATE_TOPIC, b"ON", retain=True)  # wet
        async with _hub(config, peer) as hub:
            await until_or_hub_ends(peer.expect(on(z2m(VALVE, "set"), state="OFF")), hub)

    db = open_database(tmp_path)
    rows = db.execute(
        "SELECT id, name, model FROM devices WHERE adapter = 'home_assistant'"
    ).fetchall()
    assert rows == [("ha-cellar_leak_", "cellar_leak_\ufffd", "Leak \ufffd v2")]
    assert db.execute(
        "SELECT text FROM readings WHERE device_id = 'ha-cellar_leak_'"
    ).fetchall() == [("true",)]
