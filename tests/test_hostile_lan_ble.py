"""BLE input the hub cannot use as given: a replay line whose `t` no float holds (a 400-digit
integer, valid JSON), and advert names with a lone UTF-16 surrogate (from a replay line's
`"\\ud83d"`, or from the adapter). The line is refused as a bad frame, like any bad line; the name
is kept with U+FFFD in place of the surrogate; the lines after them, and the hub, go on.
Real recording files, the real daemon on a real Mosquitto for `run --ble-replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import cast

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers.ble.advert import from_bleak
from drivers.ble.recording import parse_line, read_recording
from hub import daemon
from hub.config import DeviceConfig
from hub.errors import BadInputReason
from hub.store import hubstate, open_database
from tests.broker import Broker
from tests.helpers import (
    VALVE,
    Peer,
    hub_config,
    on,
    status_online,
    until_or_hub_ends,
    z2m,
)

HUGE_T = (
    '{"t": 1' + "0" * 400 + ', "address": "A4:C1:38:8D:18:B2", "rssi": -60, '
    '"service_data": {"fcd2": "4002ca0903bf13"}}'
)
# BTHome ATC thermometer (bthome-ble test_bthome_temperature_humidity), as in replay.jsonl.
THERMOMETER = (
    '{"t": 1709331995.518, "address": "A4:C1:38:8D:18:B2", "rssi": -60, '
    '"service_data": {"fcd2": "4002ca0903bf13"}}'
)
# A LYWSD03MMC nobody configured (xiaomi-ble test_Xiaomi_LYWSD03MMC), its name cut mid-emoji.
STRANGER = (
    '{"t": 1709332003.0, "address": "A4:C1:38:B4:94:4C", "rssi": -60, '
    '"name": "Bedroom \\ud83d", "service_data": {"fe95": "50305b05034c94b438c1a40d10041001ea01"}}'
)
# The wet SJWS01LM flood detector (ble_monitor test_Xiaomi_SJWS01LM), as in test_ble_hub.
FLOOD = "54:EF:44:E0:27:BC"
FLOOD_KEY = "255e6cabb39b2eddd0de992b9fee2bf2"
WET = (
    '{"t": 1709332000.0, "address": "54:EF:44:E0:27:BC", "rssi": -88, '
    '"service_data": {"fe95": "5859630808bc27e044ef54f58fe704000000fc69d15c"}}'
)


def test_a_t_no_float_holds_is_a_bad_line_and_the_next_is_read(tmp_path: Path) -> None:
    path = tmp_path / "adverts.jsonl"
    path.write_text(f"# recorded in the kitchen\n{HUGE_T}\n{THERMOMETER}\n")
    recording = read_recording(path)
    ((line, err),) = recording.bad_lines
    assert line == 2
    assert err.reason is BadInputReason.BAD_FRAME
    assert "t must be POSIX seconds" in err.detail
    assert recording.adverts == (parse_line(THERMOMETER),)


def test_a_lone_surrogate_in_a_replayed_name_becomes_a_replacement_character() -> None:
    advert = parse_line(STRANGER)
    assert advert is not None
    assert advert.name == "Bedroom \ufffd"
    assert advert.name.encode()  # UTF-8 holds it


def test_a_lone_surrogate_in_a_name_from_the_adapter_becomes_a_replacement_character() -> None:
    name = "Bedroom \udc00"  # what a decoder that kept a broken half would hand over
    data = AdvertisementData(
        local_name=name,
        manufacturer_data={},
        service_data={},
        service_uuids=[],
        tx_power=None,
        rssi=-60,
        platform_data=(),
    )
    advert = from_bleak(BLEDevice("a4:c1:38:b4:94:4c", name, None), data, 1.0)
    assert advert.name == "Bedroom \ufffd"


async def test_run_ble_replay_refuses_the_bad_line_and_the_flood_after_it_closes_the_valve(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recording = tmp_path / "adverts.jsonl"
    recording.write_text(f"{HUGE_T}\n{STRANGER}\n{WET}\n")
    hub_id = "hub-hostile-ble"
    config = hub_config(broker, tmp_path, hub_id=hub_id, zeroconf={"announce": False})
    flood = {"id": "laundry-flood", "adapter": "xiaomi", "address": FLOOD, "bind_key": FLOOD_KEY}
    config = config.model_copy(
        update={"devices": [*config.devices, DeviceConfig.model_validate(flood)]}
    )
    async with Peer(broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/#"]) as peer:
        hub = asyncio.create_task(daemon.run(config, daemon.Options(ble_replay=recording)))
        try:
            await until_or_hub_ends(peer.expect(status_online(hub_id), timeout=10), hub)
            await until_or_hub_ends(
                peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=10), hub
            )

            def incident(t: str, p: bytes) -> bool:
                return t.startswith(f"homeguard/hub/{hub_id}/incidents/") and bool(p)

            _, body = cast(
                tuple[str, bytes], await until_or_hub_ends(peer.expect(incident, timeout=10), hub)
            )
            assert json.loads(body)["sensors"] == ["laundry-flood"]
            assert not hub.done()
        finally:
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub

    assert "1 bad lines skipped (the first, line 1: bad_frame: t must be POSIX seconds" in (
        caplog.text
    )
    db = open_database(tmp_path)
    row = db.execute("SELECT name, origin FROM devices WHERE id = 'ble-a4c138b4944c'").fetchone()
    assert row == ("Bedroom \ufffd", "discovered")
    state = hubstate.read(db)
    assert state["stopped_services"] == {}
    assert state["ble"]["adverts"] == 2
    assert state["store"]["recorder_last_error"] is None
