"""DSMR P1: captured telegrams decoded whole, and a meter played through a pty (unplug, garbage).

The telegrams in tests/payloads/dsmr/ are dsmr-parser's own test telegrams
(ndokter/dsmr_parser, test/example_telegrams.py), byte for byte:

* dsmr_parser_v5.txt: `TELEGRAM_V5`, a three-phase DSMR 5.0 meter (`/ISk5\\x02MT382-1000`), CRC 87B3;
* dsmr_parser_v4_2.txt: `TELEGRAM_V4_2`, a Kaifa DSMR 4.2 meter (`/KFM5KAIFA-METER`), CRC 6796;
* dsmr_parser_v2_2.txt: `TELEGRAM_V2_2`, a DSMR 2.2 meter (no CRC).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from dsmr_parser.parsers import TelegramParser

from drivers.serial import Decoded, Router, Sample
from drivers.serial.dsmr import TelegramFramer, decode_telegram, needs_crc, port_settings
from drivers.serial.port import PortSettings
from drivers.serial.service import SerialService
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.serial_support import PluggablePort, RecordingSink, running
from tests.sync_support import FakeClock

PAYLOADS = Path(__file__).parent / "payloads" / "dsmr"
V5 = (PAYLOADS / "dsmr_parser_v5.txt").read_bytes()
V4_2 = (PAYLOADS / "dsmr_parser_v4_2.txt").read_bytes()
V2_2 = (PAYLOADS / "dsmr_parser_v2_2.txt").read_bytes()
#: V5 with one digit changed (L1 voltage 230.0 → 231.0) and its CRC left as it was.
V5_BROKEN_CRC = V5.replace(b"1-0:32.7.0(0230.0*V)", b"1-0:32.7.0(0231.0*V)")

V5_SAMPLES = (
    Sample(M.POWER, 244.0),  # 1-0:1.7.0(00.244*kW) - 1-0:2.7.0(00.000*kW)
    Sample(M.ENERGY, 6.825),  # 1.8.1 (4.426) + 1.8.2 (2.399) kWh
    Sample(M.POWER_FAILURES, 13.0),  # 96.7.21 (13) + 96.7.9 (0)
    Sample(M.VOLTAGE, 230.0, 1),
    Sample(M.CURRENT, 0.48, 1),
    Sample(M.POWER, 70.0, 1),
    Sample(M.VOLTAGE_SAGS, 0.0, 1),
    Sample(M.VOLTAGE_SWELLS, 0.0, 1),
    Sample(M.VOLTAGE, 230.0, 2),
    Sample(M.CURRENT, 0.44, 2),
    Sample(M.POWER, 32.0, 2),
    Sample(M.VOLTAGE_SAGS, 0.0, 2),
    Sample(M.VOLTAGE_SWELLS, 0.0, 2),
    Sample(M.VOLTAGE, 229.0, 3),
    Sample(M.CURRENT, 0.86, 3),
    Sample(M.POWER, 142.0, 3),
    Sample(M.VOLTAGE_SAGS, 0.0, 3),
    Sample(M.VOLTAGE_SWELLS, 0.0, 3),
)


def test_v5_telegram_decodes_whole() -> None:
    assert decode_telegram(V5.decode("latin-1")) == Decoded(V5_SAMPLES)


def test_v4_2_telegram_decodes_whole() -> None:
    assert decode_telegram(V4_2.decode("latin-1")) == Decoded(
        (
            Sample(M.POWER, 2027.0),
            Sample(M.ENERGY, 3016.829),  # 1581.123 + 1435.706
            Sample(M.POWER_FAILURES, 22.0),  # 15 short + 7 long
            Sample(M.CURRENT, 0.0, 1),
            Sample(M.POWER, 170.0, 1),
            Sample(M.VOLTAGE_SAGS, 0.0, 1),
            Sample(M.VOLTAGE_SWELLS, 0.0, 1),
            Sample(M.CURRENT, 6.0, 2),
            Sample(M.POWER, 1247.0, 2),
            Sample(M.VOLTAGE_SAGS, 0.0, 2),
            Sample(M.VOLTAGE_SWELLS, 0.0, 2),
            Sample(M.CURRENT, 2.0, 3),
            Sample(M.POWER, 209.0, 3),
            Sample(M.VOLTAGE_SAGS, 0.0, 3),
            Sample(M.VOLTAGE_SWELLS, 0.0, 3),
        )
    )


def test_v2_2_telegram_without_crc_decodes_on_a_dsmr_2_2_port() -> None:
    assert not needs_crc(port_settings("/dev/ttyUSB0", 9600))
    assert decode_telegram(V2_2.decode("latin-1"), crc_required=False) == Decoded(
        (Sample(M.POWER, 1010.0), Sample(M.ENERGY, 2.002))
    )


def test_a_telegram_without_crc_is_refused_on_a_dsmr_4_or_5_port() -> None:
    """Line noise that took a DSMR 5 telegram's CRC digits (and changed 0.244 kW to 90.244 kW)
    must not become a reading unchecked."""
    assert needs_crc(port_settings("/dev/ttyUSB0", None))
    text = V5.decode("latin-1").replace("00.244*kW", "90.244*kW", 1)
    no_crc = text[: text.rindex("!") + 1] + "\r\n"
    with pytest.raises(BadInputError) as caught:
        decode_telegram(no_crc)
    assert caught.value.reason is BadInputReason.BAD_FRAME
    assert "without a CRC" in str(caught.value)


def test_a_broken_crc_refuses_the_whole_telegram() -> None:
    with pytest.raises(BadInputError) as caught:
        decode_telegram(V5_BROKEN_CRC.decode("latin-1"))
    assert caught.value.reason is BadInputReason.BAD_FRAME


def with_crc(text: str) -> str:
    """A telegram edited in a test, with its CRC recomputed by dsmr-parser."""
    body = text[: text.rindex("!") + 1]
    return f"{body}{TelegramParser.crc16(body):04X}\r\n"


L1_VOLTAGE = "1-0:32.7.0(0230.0*V)"
POWER = "1-0:1.7.0(00.244*kW)"


@pytest.mark.parametrize(
    ("old", "new", "reason", "refused"),
    [
        (L1_VOLTAGE, "1-0:32.7.0(9999.0*V)", BadInputReason.OUT_OF_RANGE, V5_SAMPLES[3]),
        (L1_VOLTAGE, "1-0:32.7.0(9E999999*V)", BadInputReason.NOT_FINITE, V5_SAMPLES[3]),
        (L1_VOLTAGE, "1-0:32.7.0(NaN*V)", BadInputReason.NOT_FINITE, V5_SAMPLES[3]),
        (L1_VOLTAGE, "1-0:32.7.0(0230.0*kV)", BadInputReason.WRONG_TYPE, V5_SAMPLES[3]),
        (POWER, "1-0:1.7.0(9E999999*kW)", BadInputReason.OUT_OF_RANGE, V5_SAMPLES[0]),
    ],
)
def test_a_bad_value_in_a_good_telegram_is_refused_alone(
    old: str, new: str, reason: BadInputReason, refused: Sample
) -> None:
    """A CRC-valid telegram with one unusable value: that value is refused, the rest count."""
    decoded = decode_telegram(with_crc(V5.decode("latin-1").replace(old, new)))
    assert [e.reason for e in decoded.refused] == [reason]
    assert decoded.refused[0].detail.startswith(refused.measurement.value)
    assert decoded.samples == tuple(s for s in V5_SAMPLES if s is not refused)


def test_a_single_phase_meter_reports_on_its_own_id() -> None:
    """No L2/L3 values: L1's voltage and current go on the meter; its L1 power (the same as the
    meter's total) is not reported twice, and no phase device is announced."""
    sink = RecordingSink()
    router = Router(sink, "p1", "dsmr", "p1", None)
    samples = (Sample(M.POWER, 244.0), Sample(M.VOLTAGE, 230.0, 1), Sample(M.POWER, 244.0, 1))
    assert router.emit(Decoded(samples), 1.0) == 2
    assert sink.events == [
        Reading("p1", M.POWER, 244.0, 1.0),
        Reading("p1", M.VOLTAGE, 230.0, 1.0),
    ]


def test_framer_splits_a_stream_fed_byte_by_byte() -> None:
    framer = TelegramFramer()
    stream = b"\r\n\x00" + V5 + b"noise!" + V4_2 + V5[:300] + V2_2 + b"\r\n"
    out: list[str | BadInputError] = []
    for i in range(len(stream)):
        out.extend(framer.feed(stream[i : i + 1]))
    kinds = [o.reason if isinstance(o, BadInputError) else o.encode("latin-1") for o in out]
    assert kinds == [
        V5,
        BadInputReason.BAD_FRAME,  # "noise!" between telegrams
        V4_2,
        BadInputReason.BAD_FRAME,  # V5 cut short by the next "/"
        V2_2,
    ]
    assert framer.pending == 0


def test_framer_bounds_a_telegram_that_never_ends() -> None:
    framer = TelegramFramer(max_bytes=1000)
    out = framer.feed(b"/" + b"x" * 2000)
    assert [o.reason for o in out if isinstance(o, BadInputError)] == [BadInputReason.TOO_LARGE]
    assert framer.pending == 0


def test_port_settings() -> None:
    assert port_settings("/dev/ttyUSB0", None) == PortSettings("/dev/ttyUSB0", 115200)
    assert port_settings("/dev/ttyUSB0", 9600) == PortSettings(
        "/dev/ttyUSB0", 9600, bytesize=7, parity="E"
    )


# -- through a pseudo-terminal: the test writes what a meter would -----------------------------


def _service(path: Path, sink: RecordingSink, clock: FakeClock) -> SerialService:
    device = DeviceConfig(id="p1", adapter="dsmr", name="Smart meter", port=str(path))
    return SerialService([device], sink, clock, reopen_initial_s=0.01, reopen_cap_s=0.05)


async def test_meter_through_a_pty_with_garbage_and_an_unplug(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyUSB0")
    bridge = f"serial:{port.path}"
    pty = port.plug()
    service = _service(port.path, sink, clock)
    try:
        async with running(service):
            await sink.wait_for(lambda s: s.availability(bridge) == [True])
            assert service.status() == {str(port.path): True}
            pty.write(V5)
            await sink.wait_for(lambda s: len(s.readings()) == len(V5_SAMPLES))

            expected = [
                Reading(
                    "p1" if s.phase == 0 else f"p1-l{s.phase}", s.measurement, s.value, clock.now()
                )
                for s in V5_SAMPLES
            ]
            assert sink.readings() == expected
            assert [e for e in sink.events if isinstance(e, DeviceDiscovered)] == [
                DeviceDiscovered(
                    f"p1-l{n}",
                    "dsmr",
                    f"Smart meter L{n}",
                    None,
                    ("current", "power", "voltage", "voltage_sags", "voltage_swells"),
                    clock.now(),
                )
                for n in (1, 2, 3)
            ]
            assert sink.availability("p1") == [True]

            # Garbage between telegrams and a telegram whose CRC fails: both counted, and the
            # good telegram that follows still decodes.
            pty.write(b"\x13\xfe garbage \x00" + V5_BROKEN_CRC + V4_2)
            await sink.wait_for(lambda s: s.values("p1").get(M.POWER) == 2027.0)
            assert sink.reasons() == [BadInputReason.BAD_FRAME, BadInputReason.BAD_FRAME]
            assert {subject for subject, _, _ in sink.refused} == {"dsmr p1"}
            assert "CRC" in sink.refused[1][2]

            # Unplug: the port and the meter go offline; plugged back in, readings resume.
            port.unplug()
            await sink.wait_for(lambda s: s.availability(bridge) == [True, False])
            assert sink.availability("p1") == [True, False]
            assert service.status() == {str(port.path): False}
            pty = port.plug()
            await sink.wait_for(lambda s: s.availability(bridge) == [True, False, True])
            before = len(sink.readings())
            pty.write(V2_2 + V4_2)  # no CRC on a DSMR 4/5 port: refused; the next one decodes
            await sink.wait_for(lambda s: len(s.readings()) > before)
            assert sink.values("p1")[M.POWER] == 2027.0
            assert sink.availability("p1") == [True, False, True]
            assert sink.reasons() == [BadInputReason.BAD_FRAME] * 3
            assert "without a CRC" in sink.refused[2][2]
    finally:
        port.close()


class _LogWatch(logging.Handler):
    """Records log records and wakes a waiter (the code logs on the event loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.changed.set()

    async def wait_for(self, count: int, level: int) -> None:
        async with asyncio.timeout(10):
            while sum(r.levelno == level for r in self.records) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_a_port_missing_at_start_is_logged_once_and_opened_when_it_appears(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyUSB0")
    bridge = f"serial:{port.path}"
    watch = _LogWatch()
    logger = logging.getLogger("drivers.serial.port")
    logger.addHandler(watch)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        async with running(_service(port.path, sink, clock)):
            await watch.wait_for(3, logging.DEBUG)  # retried a few times, quietly
            assert sink.availability(bridge) == [False]
            assert sink.availability("p1") == [False]
            warnings = [r for r in watch.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "missing" in warnings[0].getMessage()

            pty = port.plug()
            await sink.wait_for(lambda s: s.availability(bridge) == [False, True])
            pty.write(V5)
            await sink.wait_for(lambda s: len(s.readings()) == len(V5_SAMPLES))
            assert sink.availability("p1") == [False, True]
            assert sum(r.levelno == logging.WARNING for r in watch.records) == 1
    finally:
        logger.removeHandler(watch)
        logger.setLevel(old_level)
        port.close()


async def test_a_meter_that_falls_silent_goes_offline_while_the_port_stays_open(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The P1 cable pulled at the meter, the USB adapter still plugged in."""
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyUSB0")
    bridge = f"serial:{port.path}"
    pty = port.plug()
    device = DeviceConfig(id="p1", adapter="dsmr", port=str(port.path))
    service = SerialService([device], sink, clock, dsmr_silent_after_s=0.2)
    try:
        async with running(service):
            await sink.wait_for(lambda s: s.availability(bridge) == [True])
            pty.write(V5)
            await sink.wait_for(lambda s: s.availability("p1") == [True, False])
            pty.write(V5)
            await sink.wait_for(lambda s: s.availability("p1") == [True, False, True])
            assert len(sink.readings()) == 2 * len(V5_SAMPLES)
            assert sink.availability(bridge) == [True]
    finally:
        port.close()


async def test_a_dsmr_2_2_port_takes_telegrams_without_crc(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyUSB0")
    pty = port.plug()
    device = DeviceConfig(id="p1", adapter="dsmr", port=str(port.path), baudrate=9600)
    service = SerialService([device], sink, clock, reopen_initial_s=0.01, reopen_cap_s=0.05)
    try:
        async with running(service):
            await sink.wait_for(lambda s: s.availability(f"serial:{port.path}") == [True])
            pty.write(V2_2)
            await sink.wait_for(lambda s: len(s.readings()) == 2)
            assert sink.values("p1") == {M.POWER: 1010.0, M.ENERGY: 2.002}
            assert sink.refused == []
    finally:
        port.close()
