"""Random input where serial devices talk: random bytes into the DSMR stream and the JSON-lines
stream, random values into CRC-valid telegrams, random registers into the SDM decoder. Nothing
escapes but readings that pass the measurement checks and refusals, and every refused part is
counted (a refusal per bad value, line or frame)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from dsmr_parser.parsers import TelegramParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.serial import Sample
from drivers.serial.dsmr import DsmrMeter, decode_telegram
from drivers.serial.json_lines import MAX_LINE_BYTES, JsonLinesDevice, decode_line
from drivers.serial.sdm import PROFILES, decode_registers
from hub.errors import BadInputError
from hub.events import Reading
from hub.measurements import BOOLEAN, RANGES, STATES, Measurement
from tests.serial_support import RecordingSink

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: dsmr-parser's CRC is pure Python (≈ 2 ms a telegram): fewer examples where telegrams decode.
TELEGRAM_SETTINGS = settings(SETTINGS, max_examples=80)
#: dsmr-parser's TELEGRAM_V5 (ndokter/dsmr_parser test/example_telegrams.py), as in test_serial_dsmr.
V5 = (Path(__file__).parent / "payloads" / "dsmr" / "dsmr_parser_v5.txt").read_bytes()
BLANK = b" \t\r\n\x00"


def check_value(measurement: Measurement, value: object) -> None:
    if measurement in BOOLEAN:
        assert isinstance(value, bool)
    elif measurement in STATES:
        assert value in STATES[measurement]
    else:
        assert isinstance(value, float)
        assert math.isfinite(value)
        low, high = RANGES.get(measurement, (-math.inf, math.inf))
        assert low <= value <= high


def check_samples(samples: tuple[Sample, ...]) -> None:
    for s in samples:
        check_value(s.measurement, s.value)


def check_readings(sink: RecordingSink) -> None:
    for r in sink.readings():
        check_value(r.measurement, r.value)


def feed_in_pieces(device: DsmrMeter | JsonLinesDevice, data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        device.feed(data[start:end], 0.0)


@SETTINGS
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_random_bytes_into_the_dsmr_stream(data: bytes, cuts: list[int]) -> None:
    sink = RecordingSink()
    meter = DsmrMeter("p1", "p1", sink)
    feed_in_pieces(meter, data, cuts)
    check_readings(sink)
    junk = data.translate(None, BLANK)
    # What is not blank was refused, decoded, or is still held as the start of a telegram.
    assert not junk or sink.refused or sink.readings() or meter.pending


@TELEGRAM_SETTINGS
@given(
    garbage=st.lists(st.binary(max_size=200), min_size=3, max_size=3),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
)
def test_good_telegrams_survive_garbage_around_them(garbage: list[bytes], cuts: list[int]) -> None:
    sink = RecordingSink()
    meter = DsmrMeter("p1", "p1", sink)
    feed_in_pieces(meter, garbage[0] + V5 + garbage[1] + V5 + garbage[2], cuts)
    check_readings(sink)
    from_v5 = [r for r in sink.readings() if r.measurement is Measurement.ENERGY]
    assert len(from_v5) >= 2  # both telegrams decoded, whatever was around them
    assert all(r.value == 6.825 for r in from_v5 if isinstance(r, Reading))


VALUE = st.text(alphabet="0123456789.-+eE*kWhVAsnNaIif ()", max_size=14)


@TELEGRAM_SETTINGS
@given(values=st.lists(VALUE, min_size=4, max_size=4))
def test_random_values_in_a_crc_valid_telegram(values: list[str]) -> None:
    text = V5.decode("latin-1")
    for old, new in zip(("00.244*kW", "0230.0*V", "00013", "000004.426*kWh"), values, strict=True):
        text = text.replace(old, new, 1)
    body = text[: text.rindex("!") + 1]
    telegram = f"{body}{TelegramParser.crc16(body):04X}\r\n"
    try:
        decoded = decode_telegram(telegram)
    except BadInputError:
        return
    check_samples(decoded.samples)


@SETTINGS
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_random_bytes_into_the_json_lines_stream(data: bytes, cuts: list[int]) -> None:
    sink = RecordingSink()
    sensor = JsonLinesDevice("probe", "probe", sink)
    feed_in_pieces(sensor, data, cuts)
    check_readings(sink)
    complete = [line.strip(b"\r") for line in data.split(b"\n")[:-1]]
    lines = [line for line in complete if line.strip()]
    # Each complete line gave at least one reading or refusal (a long line: one refusal).
    assert len(sink.refused) + len(sink.readings()) >= len(lines)


JSON_VALUES = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["open", "closed"]),
)
KEYS = st.one_of(st.sampled_from([m.value for m in Measurement]), st.text(max_size=8))


@SETTINGS
@given(obj=st.dictionaries(KEYS, JSON_VALUES, min_size=1, max_size=8))
def test_every_key_of_a_line_is_a_reading_or_a_refusal(obj: dict[str, object]) -> None:
    line = json.dumps(obj).encode()
    try:
        decoded = decode_line(line)
    except BadInputError:
        assert len(line) > MAX_LINE_BYTES or "NaN" in line.decode() or "Infinity" in line.decode()
        return
    assert len(decoded.samples) + len(decoded.refused) == len(obj)
    check_samples(decoded.samples)


@SETTINGS
@given(
    model=st.sampled_from(sorted(PROFILES)),
    words=st.lists(st.integers(0, 0xFFFF), min_size=24, max_size=24),
)
def test_random_registers_into_the_sdm_decoder(model: str, words: list[int]) -> None:
    profile = PROFILES[model]
    addresses = [a for b in profile.blocks for a in range(b.address, b.address + b.count)]
    registers = dict(zip(addresses, words * 2, strict=False))
    decoded = decode_registers(profile, registers)
    assert len(decoded.samples) + len(decoded.refused) == len(profile.fields)
    check_samples(decoded.samples)
    again = decode_registers(model, registers)
    assert again.samples == decoded.samples
    assert [(e.reason, e.detail) for e in again.refused] == [
        (e.reason, e.detail) for e in decoded.refused
    ]
