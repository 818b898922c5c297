"""Random bytes where BTHome and Xiaomi data go, and random replay lines: nothing escapes the
decoder or the reader but readings that pass the measurement checks and `BadInputError`s."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.ble.advert import Advert, uuid16
from drivers.ble.decode import Decoded, Decoder
from drivers.ble.recording import MAX_LINE, parse_line, parse_lines
from hub.config import DeviceConfig
from hub.errors import BadInputError
from hub.measurements import BOOLEAN, RANGES

ADDRESS = "A4:C1:38:8D:18:B2"
KEY = "231d39c1d7cc1ab1aee224cd096db932"
BTHOME_V2, BTHOME_V1, BTHOME_V1_ENCRYPTED = uuid16(0xFCD2), uuid16(0x181C), uuid16(0x181E)
MIBEACON = uuid16(0xFE95)
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

payloads = st.binary(max_size=64)
keys = st.sampled_from([None, KEY])


def check(decoded: Decoded) -> None:
    for r in decoded.readings:
        if r.measurement in BOOLEAN:
            assert isinstance(r.value, bool)
        else:
            assert isinstance(r.value, float)
            assert math.isfinite(r.value)
            low, high = RANGES.get(r.measurement, (-math.inf, math.inf))
            assert low <= r.value <= high
    assert all(isinstance(e, BadInputError) for e in decoded.refused)


def decoder(adapter: str, key: str | None) -> Decoder:
    return Decoder([DeviceConfig(id="d", adapter=adapter, address=ADDRESS, bind_key=key)])  # type: ignore[arg-type]  # adapter is a Literal in the config


@SETTINGS
@given(
    st.lists(payloads, min_size=1, max_size=4),
    st.sampled_from([BTHOME_V2, BTHOME_V1, BTHOME_V1_ENCRYPTED]),
    keys,
)
def test_random_bthome_service_data(data: list[bytes], uuid: str, key: str | None) -> None:
    configured, neighbour = decoder("bthome", key), Decoder([])
    for i, payload in enumerate(data):  # one parser sees them all, as from one device
        advert = Advert(ADDRESS, -60, float(i), "ATC_8D18B2", {uuid: payload})
        check(configured.decode(advert))
        check(neighbour.decode(advert))


@SETTINGS
@given(st.lists(payloads, min_size=1, max_size=4), keys)
def test_random_mibeacon_service_data(data: list[bytes], key: str | None) -> None:
    configured, neighbour = decoder("xiaomi", key), Decoder([])
    for i, payload in enumerate(data):
        advert = Advert(ADDRESS, -60, float(i), None, {MIBEACON: payload})
        check(configured.decode(advert))
        check(neighbour.decode(advert))


@SETTINGS
@given(
    st.sampled_from([b"\x40\x30", b"\x40\x50", b"\x40\x20", b"\x58\x59", b"\x48\x59"]),
    st.sampled_from([0x0863, 0x055B, 0x0997, 0x3F0F, 0x0098, 0x01AA]),
    st.lists(
        st.tuples(
            st.sampled_from([0x1004, 0x1006, 0x100A, 0x100D, 0x1014, 0x1015, 0x1001, 0x0F]),
            st.integers(0, 8),
            st.binary(max_size=10),
        ),
        max_size=3,
    ),
    st.binary(max_size=8),
    keys,
)
def test_mibeacon_frames_of_known_devices(
    frame_control: bytes,
    product: int,
    objects: list[tuple[int, int, bytes]],
    tail: bytes,
    key: str | None,
) -> None:
    """Random objects behind a real frame control and product id reach the object decoders."""
    body = b"".join(o.to_bytes(2, "little") + bytes([n]) + data for o, n, data in objects)
    payload = frame_control + product.to_bytes(2, "little") + b"\x01" + body + tail
    check(decoder("xiaomi", key).decode(Advert(ADDRESS, -60, 0.0, None, {MIBEACON: payload})))


@SETTINGS
@given(
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=31), max_size=3),
    st.dictionaries(st.sampled_from([BTHOME_V2, MIBEACON, uuid16(0x181A)]), payloads, max_size=3),
    st.sampled_from(["bthome", "xiaomi"]),
)
def test_random_manufacturer_and_mixed_service_data(
    manufacturer: dict[int, bytes], service: dict[str, bytes], adapter: str
) -> None:
    advert = Advert(ADDRESS, -60, 0.0, None, service, manufacturer)
    check(decoder(adapter, None).decode(advert))
    check(Decoder([]).decode(advert))


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_random_replay_lines(line: str | bytes) -> None:
    try:
        advert = parse_line(line)
    except BadInputError:
        return
    assert advert is None or isinstance(advert, Advert)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "t": json_values,
            "address": st.sampled_from([ADDRESS, "nope", ""]) | json_values,
            "rssi": json_values,
            "name": json_values,
            "service_data": st.dictionaries(st.sampled_from(["fcd2", "fe95", "x"]), json_values)
            | json_values,
            "manufacturer_data": json_values,
            "service_uuids": json_values,
        },
    )
)
def test_random_replay_objects(record: dict[str, object]) -> None:
    import json

    line = json.dumps(record)
    recording = parse_lines([line, line[: len(line) // 2], "x" * (MAX_LINE + 1)])
    assert len(recording.adverts) + len(recording.bad_lines) >= 2
