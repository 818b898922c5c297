"""BLE end to end: a recorded flood-detector advert, replayed into the running hub, closes the
Zigbee valve and opens the incident, exactly as a Zigbee leak sensor would."""

from __future__ import annotations

import json
from pathlib import Path

from hub import daemon
from hub.config import DeviceConfig
from tests.broker import Broker
from tests.helpers import VALVE, Peer, hub_config, on, running_hub, z2m

# The wet SJWS01LM advert of tests/payloads/ble/xiaomi.jsonl (source: custom-components/ble_monitor
# test_Xiaomi_SJWS01LM), with its bind key.
FLOOD = "54:EF:44:E0:27:BC"
FLOOD_KEY = "255e6cabb39b2eddd0de992b9fee2bf2"
WET_ADVERT = {
    "t": 1709332000.0,
    "address": FLOOD,
    "rssi": -88,
    "service_data": {"fe95": "5859630808bc27e044ef54f58fe704000000fc69d15c"},
}


async def test_replayed_flood_advert_closes_the_valve(broker: Broker, tmp_path: Path) -> None:
    recording = tmp_path / "adverts.jsonl"
    recording.write_text(json.dumps(WET_ADVERT) + "\n")
    config = hub_config(broker, tmp_path, hub_id="hub-ble")
    flood = {
        "id": "laundry-flood",
        "adapter": "xiaomi",
        "address": FLOOD,
        "bind_key": FLOOD_KEY,
        "location": "laundry",
    }
    config = config.model_copy(
        update={"devices": [*config.devices, DeviceConfig.model_validate(flood)]}
    )
    async with Peer(broker, ["zigbee2mqtt/#", "homeguard/hub/hub-ble/#"]) as peer:
        options = daemon.Options(ble_replay=recording)
        async with running_hub(config, peer, options):
            await peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=10)

            def incident(t: str, p: bytes) -> bool:
                return t.startswith("homeguard/hub/hub-ble/incidents/") and bool(p)

            _, body = await peer.expect(incident, timeout=10)
    data = json.loads(body)
    assert data["sensors"] == ["laundry-flood"]
    assert data["location"] == "laundry"
    assert data["evidence"][0]["measurement"] == "water_leak"
