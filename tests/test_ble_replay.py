"""Recorded adverts through the whole BLE driver: the replay file format, `BleService` on a
`ReplaySource` into a recording sink, and `homeguard-hub replay` on a configuration file."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import pytest

from drivers.ble.advert import Advert, uuid16
from drivers.ble.recording import (
    MAX_LINE,
    RecordingWriter,
    format_advert,
    parse_line,
    parse_lines,
    read_recording,
)
from drivers.ble.service import BleService
from drivers.ble.source import ReplaySource
from hub import cli_replay
from hub.config import DeviceConfig, load_config
from hub.errors import BadInputReason
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink

REPLAY = Path(__file__).parent / "payloads" / "ble" / "replay.jsonl"
NOW = 1_800_000_000.0


class Clock:
    def now(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return 0.0


DEVICES = [
    DeviceConfig(id="lounge", adapter="bthome", address="A4:C1:38:8D:18:B2"),
    DeviceConfig(
        id="bedroom",
        adapter="bthome",
        address="54:48:E6:8F:80:A5",
        bind_key="231d39c1d7cc1ab1aee224cd096db932",
    ),
    DeviceConfig(
        id="laundry-floor",
        adapter="xiaomi",
        address="54:EF:44:E0:27:BC",
        bind_key="255e6cabb39b2eddd0de992b9fee2bf2",
    ),
    DeviceConfig(
        id="boiler-floor",
        adapter="xiaomi",
        address="A4:C1:38:B9:4C:67",
        # Not its key (that is 33ede533...): a misconfigured or spoofed device.
        bind_key="255e6cabb39b2eddd0de992b9fee2bf2",
    ),
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
]


async def test_replay_through_the_service(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    source = ReplaySource(REPLAY)
    service = BleService(DEVICES, sink, Clock(), source=source)
    with caplog.at_level(logging.WARNING):
        await service.run()  # a replay ends with its file
    assert sink.events == [
        Availability("ble:replay", True, NOW),
        Reading("lounge", M.TEMPERATURE, 25.06, NOW),
        Reading("lounge", M.HUMIDITY, 50.55, NOW),
        Reading("bedroom", M.TEMPERATURE, 25.06, NOW),
        Reading("bedroom", M.HUMIDITY, 50.55, NOW),
        Reading("laundry-floor", M.WATER_LEAK, True, NOW),
        DeviceDiscovered(
            "ble-a4c138b4944c",
            "xiaomi",
            "Temperature/Humidity Sensor 944C",
            "LYWSD03MMC",
            ("humidity", "temperature"),
            NOW,
        ),
    ]
    assert sink.refused == [("boiler-floor", BadInputReason.DECRYPT_FAILED)]
    assert source.bad_lines == 1
    assert "1 bad lines skipped (the first, line 10" in caplog.text
    assert service.status() == {
        "bridge": "ble:replay",
        "online": True,
        "mode": "replay",
        "adverts": 6,
        "readings": 5,
        "refused": 1,
        "dropped": 0,
    }


async def test_a_missing_replay_file_is_logged_and_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    await BleService(DEVICES, sink, Clock(), source=ReplaySource(tmp_path / "nope.jsonl")).run()
    assert sink.events == []
    assert "cannot read the BLE replay file" in caplog.text


def test_written_adverts_read_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    recorded = read_recording(REPLAY).adverts
    odd = Advert(
        "AA:BB:CC:DD:EE:FF",
        -40,
        12.5,
        name="naïve ☃",
        service_data={"0000abcd-1234-5678-9abc-def012345678": b"\x00\xff"},
        service_uuids=(uuid16(0xFCD2),),
    )
    with RecordingWriter(path) as writer:
        for advert in (*recorded, odd):
            writer.write(advert)
    assert writer.written == len(recorded) + 1
    again = read_recording(path)
    assert again.bad_lines == ()
    assert again.adverts == (*recorded, odd)
    assert format_advert(odd) in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "line",
    [
        "[1, 2]",
        '{"t": 1, "address": "not a mac", "rssi": -60}',
        '{"t": 1, "address": "A4:C1:38:8D:18:B2", "rssi": true}',
        '{"t": -1, "address": "A4:C1:38:8D:18:B2", "rssi": -60}',
        '{"t": 1, "address": "A4:C1:38:8D:18:B2", "rssi": -60, "service_data": {"fcd2": "zz"}}',
        '{"t": 1, "address": "A4:C1:38:8D:18:B2", "rssi": -60, "service_data": {"xyz": "00"}}',
        '{"t": 1, "address": "A4:C1:38:8D:18:B2", "rssi": -60, "manufacturer_data": {"70000": ""}}',
        '{"t": 1, "address": "A4:C1:38:8D:18:B2", "rssi": -60, "extra": 1}',
        "[" * 100_000,
    ],
)
def test_bad_lines_are_refused_as_bad_frames(line: str) -> None:
    recording = parse_lines([line])
    assert recording.adverts == ()
    ((number, err),) = recording.bad_lines
    assert number == 1
    assert err.reason is BadInputReason.BAD_FRAME


def test_an_overlong_line_is_skipped_and_the_next_one_read(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    good = next(line for line in REPLAY.read_text().splitlines() if line.startswith("{"))
    path.write_bytes(b"x" * (3 * MAX_LINE) + b"\n" + good.encode() + b"\n")
    recording = read_recording(path)
    assert [n for n, _ in recording.bad_lines] == [1]
    assert recording.adverts == (parse_line(good),)


# -- homeguard-hub replay ---------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\nid = "hub-test"\ndata_dir = "{tmp_path / "data"}"\n'
        '[[devices]]\nid = "lounge"\nadapter = "bthome"\naddress = "A4:C1:38:8D:18:B2"\n'
        '[[devices]]\nid = "bedroom"\nadapter = "bthome"\naddress = "54:48:E6:8F:80:A5"\n'
        'bind_key = "231d39c1d7cc1ab1aee224cd096db932"\n'
        '[[devices]]\nid = "laundry-floor"\nadapter = "xiaomi"\naddress = "54:EF:44:E0:27:BC"\n'
        'bind_key = "255e6cabb39b2eddd0de992b9fee2bf2"\n'
        '[[devices]]\nid = "boiler-floor"\nadapter = "xiaomi"\naddress = "A4:C1:38:B9:4C:67"\n'
    )
    os.chmod(path, 0o600)  # it holds bind keys
    return path


def run_cli(tmp_path: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="homeguard-hub")
    cli_replay.add_parser(parser.add_subparsers())
    args = parser.parse_args(["replay", *argv])
    config = load_config(write_config(tmp_path))
    result: int = args.handler(args, config)
    return result


def test_cli_replay_prints_readings_refusals_and_discoveries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(tmp_path, str(REPLAY)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "2024-03-01T22:26:35.518Z  lounge  temperature = 25.06 °C",
        "2024-03-01T22:26:35.518Z  lounge  humidity = 50.55 %",
        "2024-03-01T22:26:37.518Z  bedroom  temperature = 25.06 °C",
        "2024-03-01T22:26:37.518Z  bedroom  humidity = 50.55 %",
        "2024-03-01T22:26:40.000Z  laundry-floor  water_leak = true",
        "2024-03-01T22:26:41.000Z  boiler-floor  REFUSED decrypt_failed: an encrypted advert, "
        "and no bind_key is configured",
        "2024-03-01T22:26:43.000Z  ble-a4c138b4944c  DISCOVERED xiaomi LYWSD03MMC "
        "(Temperature/Humidity Sensor 944C) at A4:C1:38:B4:94:4C, not configured: "
        "humidity, temperature",
        f"{REPLAY}:10: skipped: bad_frame: not JSON: Expecting value: line 1 column 1 (char 0)",
        "6 adverts: 5 readings, 1 refused, 1 discovered, 1 from other devices; 1 bad lines",
    ]


def test_cli_replay_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, str(REPLAY), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {
        "adverts": 6,
        "readings": 5,
        "refused": 1,
        "discovered": 1,
        "not_configured": 1,
        "bad_lines": 1,
    }
    assert report["events"][4] == {
        "type": "reading",
        "at": 1709332000.0,
        "device_id": "laundry-floor",
        "measurement": "water_leak",
        "value": True,
        "unit": None,
    }
    assert report["bad_lines"][0]["line"] == 10


def test_cli_replay_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, str(tmp_path / "nope.jsonl")) == 1
    assert "cannot read" in capsys.readouterr().err


async def test_the_service_records_what_it_takes(tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    await BleService(DEVICES, Sink(), Clock(), source=ReplaySource(REPLAY), record=tape).run()
    assert read_recording(tape).adverts == read_recording(REPLAY).adverts


async def test_a_recording_that_cannot_be_opened_does_not_stop_the_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    tape = tmp_path / "no-such-dir" / "tape.jsonl"
    await BleService(DEVICES, sink, Clock(), source=ReplaySource(REPLAY), record=tape).run()
    assert len([e for e in sink.events if isinstance(e, Reading)]) == 5
    assert "cannot record BLE adverts" in caplog.text


async def test_library_warnings_are_left_to_the_refusal_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bthome-ble warns at every advert that fails to decrypt; the hub counts them instead."""
    sink = Sink()
    wrong = [
        d.model_copy(update={"bind_key": "814aac74c4f17b6c1581e1ab87816b99"})
        if d.id == "bedroom"
        else d
        for d in DEVICES
    ]
    with caplog.at_level(logging.DEBUG):
        await BleService(wrong, sink, Clock(), source=ReplaySource(REPLAY)).run()
    assert ("bedroom", BadInputReason.DECRYPT_FAILED) in sink.refused
    assert not [r for r in caplog.records if r.name.startswith(("bthome_ble", "xiaomi_ble"))]


def test_cli_replay_without_ble_devices_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nid = "hub-test"\ndata_dir = "{tmp_path / "data"}"\n')
    parser = argparse.ArgumentParser(prog="homeguard-hub")
    cli_replay.add_parser(parser.add_subparsers())
    args = parser.parse_args(["replay", str(REPLAY)])
    assert args.handler(args, load_config(path)) == 0
    captured = capsys.readouterr()
    assert "no bthome or xiaomi devices are configured" in captured.err
    assert "0 readings" in captured.out
    assert "DISCOVERED bthome" in captured.out
