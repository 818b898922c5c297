"""JSON-lines sensors: lines decoded whole, and a sensor played through a pty (garbage, unplug).

The lines are what the JSON-lines protocol of drivers/serial/json_lines.py defines (one object of
`Measurement` keys per line, CR LF as an Arduino `Serial.println` ends it), e.g. a USB leak probe
printing `{"water_leak": true, "temperature": 21.5}`.
"""

from __future__ import annotations

import asyncio
import os
import select
from pathlib import Path

import pytest

from drivers.serial import Decoded, Sample
from drivers.serial.json_lines import MAX_LINE_BYTES, LineFramer, decode_line, port_settings
from drivers.serial.port import PortSettings, SerialPort
from drivers.serial.service import SerialService
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Reading
from hub.measurements import Measurement as M
from tests.serial_support import WAIT_S, PluggablePort, PtyPair, RecordingSink, running
from tests.sync_support import FakeClock

LEAK = b'{"water_leak": true, "temperature": 21.5}'
DRY = b'{"water_leak": false, "temperature": 21.4, "battery": 97}'


def test_a_line_decodes_whole() -> None:
    assert decode_line(LEAK) == Decoded((Sample(M.WATER_LEAK, True), Sample(M.TEMPERATURE, 21.5)))
    assert decode_line(b'{"valve": "closed"}') == Decoded((Sample(M.VALVE, "closed"),))


def test_bad_values_are_refused_one_by_one() -> None:
    decoded = decode_line(b'{"water_leak": 1, "temperature": 900, "colour": "red", "humidity": 40}')
    assert decoded.samples == (Sample(M.HUMIDITY, 40.0),)
    assert [e.reason for e in decoded.refused] == [
        BadInputReason.WRONG_TYPE,  # water_leak must be true or false
        BadInputReason.OUT_OF_RANGE,  # 900 °C
        BadInputReason.UNKNOWN_KEY,
    ]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_number_json_does_not_allow_is_refused_alone_and_the_leak_kept(constant: bytes) -> None:
    """A board with a dead probe (ArduinoJson and Python write NaN) still reports its leak."""
    decoded = decode_line(b'{"water_leak": true, "temperature": ' + constant + b"}")
    assert decoded.samples == (Sample(M.WATER_LEAK, True),)
    assert [e.reason for e in decoded.refused] == [BadInputReason.NOT_FINITE]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"water_leak": tru', BadInputReason.MALFORMED_JSON),
        (b"\xff\xfe{}", BadInputReason.MALFORMED_JSON),
        (b"[1, 2]", BadInputReason.NOT_AN_OBJECT),
        (b"{}", BadInputReason.UNSUPPORTED),
        (b'{"x": "' + b"a" * MAX_LINE_BYTES + b'"}', BadInputReason.TOO_LARGE),
    ],
)
def test_a_line_refused_whole(line: bytes, reason: BadInputReason) -> None:
    with pytest.raises(BadInputError) as caught:
        decode_line(line)
    assert caught.value.reason is reason


def test_framer_splits_lines_fed_byte_by_byte() -> None:
    framer = LineFramer(max_bytes=100)
    stream = b"\r\n" + LEAK + b"\r\n" + b"y" * 250 + b"\r\n" + DRY + b"\n" + b"partial"
    out: list[bytes | BadInputError] = []
    for i in range(len(stream)):
        out.extend(framer.feed(stream[i : i + 1]))
    assert [o.reason if isinstance(o, BadInputError) else o for o in out] == [
        LEAK,
        BadInputReason.TOO_LARGE,  # refused once, skipped to its newline
        DRY,
    ]
    assert framer.pending == len(b"partial")


def test_port_settings() -> None:
    assert port_settings("/dev/ttyACM0", None) == PortSettings("/dev/ttyACM0", 115200)


async def test_sensor_through_a_pty_with_garbage_and_an_unplug(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyACM0")
    bridge = f"serial:{port.path}"
    device = DeviceConfig(id="probe", adapter="json_lines", port=str(port.path))
    pty = port.plug()
    try:
        service = SerialService([device], sink, clock, reopen_initial_s=0.01, reopen_cap_s=0.05)
        async with running(service):
            await sink.wait_for(lambda s: s.availability(bridge) == [True])
            pty.write(b"\x00\xffboot garbage\r\n" + LEAK + b"\r\n")
            await sink.wait_for(lambda s: len(s.readings()) == 2)
            assert sink.readings() == [
                Reading("probe", M.WATER_LEAK, True, clock.now()),
                Reading("probe", M.TEMPERATURE, 21.5, clock.now()),
            ]
            assert sink.refused[0][:2] == ("json_lines probe", BadInputReason.MALFORMED_JSON)
            assert sink.availability("probe") == [True]

            port.unplug()
            await sink.wait_for(lambda s: s.availability(bridge) == [True, False])
            assert sink.availability("probe") == [True, False]
            pty = port.plug()
            await sink.wait_for(lambda s: s.availability(bridge) == [True, False, True])
            pty.write(DRY + b"\r\n")
            await sink.wait_for(lambda s: len(s.readings()) == 5)
            assert sink.values("probe") == {
                M.WATER_LEAK: False,
                M.TEMPERATURE: 21.4,
                M.BATTERY: 97.0,
            }
            assert sink.availability("probe") == [True, False, True]
            assert len(sink.refused) == 1
    finally:
        port.close()


async def test_a_read_with_bytes_waiting_still_gives_the_event_loop_a_turn() -> None:
    """The leak path shares the event loop with every port: a board that never runs dry (a USB
    board printing in a loop, far faster than the hub decodes) had held the loop for as long
    as it kept sending, because a read that finds bytes waiting never suspended."""
    pty = PtyPair()
    # Opened before the port takes it exclusively: it shows when the bytes are there to read.
    probe = os.open(pty.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        async with SerialPort(PortSettings(pty.path, 115200)) as port:
            pty.write(DRY + b"\r\n")
            readable, _, _ = select.select([probe], [], [], WAIT_S)
            assert readable
            turns: list[bool] = []
            asyncio.get_running_loop().call_soon(turns.append, True)  # other work, waiting
            data = await port.read()
        assert data.startswith(b'{"water_leak"')
        assert turns == [True]  # it ran before the read returned
    finally:
        os.close(probe)
        pty.close()
