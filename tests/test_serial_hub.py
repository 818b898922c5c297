"""Serial end to end: a JSON-lines leak board on a pseudo-terminal, read by the running hub,
closes the Zigbee valve; garbage on the line before it is counted, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

from hub.config import DeviceConfig
from tests.broker import Broker
from tests.helpers import VALVE, Peer, hub_config, on, running_hub, z2m
from tests.serial_support import PtyPair


async def test_a_wet_line_from_a_serial_board_closes_the_valve(
    broker: Broker, tmp_path: Path
) -> None:
    pty = PtyPair()
    board = DeviceConfig(id="sump-board", adapter="json_lines", port=pty.path, location="sump")
    config = hub_config(broker, tmp_path, hub_id="hub-serial")
    config = config.model_copy(update={"devices": [*config.devices, board]})
    try:
        async with Peer(broker, ["zigbee2mqtt/#", "homeguard/hub/hub-serial/#"]) as peer:
            async with running_hub(config, peer):
                pty.write(b"\x00\xff garbage that is not JSON\n")
                pty.write(b'{"water_leak": true, "temperature": 11.5}\n')
                await peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=10)

                def incident(t: str, p: bytes) -> bool:
                    return t.startswith("homeguard/hub/hub-serial/incidents/") and bool(p)

                _, body = await peer.expect(incident, timeout=10)
    finally:
        pty.close()
    data = json.loads(body)
    assert data["sensors"] == ["sump-board"]
    assert data["location"] == "sump"
