"""Xiaomi MiBeacon replays and downgrades: what xiaomi-ble does not refuse, the decoder does.

The frames are the recorded SJWS01LM flood sensor's v5 advert (tests/payloads/ble/xiaomi.jsonl)
sealed again with its bind key under other frame counters, as the device does for each new
advert; and MiBeacon v3 ("legacy", no authentication tag) frames for the same keyed device.
"""

from __future__ import annotations

from Cryptodome.Cipher import AES
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from drivers.ble.advert import Advert, uuid16
from drivers.ble.decode import Decoded, Decoder
from drivers.ble.mibeacon import RESTART_AFTER_S, FrameCounter, Verdict, frame_counter
from hub.errors import BadInputReason
from hub.events import Reading
from hub.measurements import Measurement as M
from tests.test_ble_decode import FLOOD_WET, FLOOD_WET_KEY, XIAOMI, device

MIBEACON = uuid16(0xFE95)
KEY = bytes.fromhex(FLOOD_WET_KEY)
RECORDED = XIAOMI[FLOOD_WET][0].service_data[MIBEACON]  # v5, MAC included, counter 8
WET = bytes.fromhex("14100101")  # object 0x1014 (moisture), 1 byte: 1
DRY = bytes.fromhex("14100100")
DAY = 86_400.0


def sealed(counter: int, payload: bytes = WET) -> bytes:
    """The recorded frame's header, `payload` sealed under `counter` as the device does."""
    packet_id, ext = counter & 0xFF, (counter >> 8).to_bytes(3, "little")
    header = RECORDED[:4] + bytes([packet_id]) + RECORDED[5:11]  # frame control, product, MAC
    nonce = RECORDED[5:11] + RECORDED[2:4] + bytes([packet_id]) + ext
    box = AESCCM(KEY, tag_length=4).encrypt(nonce, payload, b"\x11")
    return header + box[:-4] + ext + box[-4:]


def advert(frame: bytes, at: float) -> Advert:
    return Advert(FLOOD_WET, -70, at, service_data={MIBEACON: frame})


def flood() -> Decoder:
    return Decoder([device("laundry-floor", "xiaomi", FLOOD_WET, FLOOD_WET_KEY)])


def wet(at: float) -> Decoded:
    return Decoded("laundry-floor", (Reading("laundry-floor", M.WATER_LEAK, True, at),))


def dry(at: float) -> Decoded:
    return Decoded("laundry-floor", (Reading("laundry-floor", M.WATER_LEAK, False, at),))


def replayed(decoded: Decoded) -> bool:
    return (
        decoded.readings == ()
        and [e.reason for e in decoded.refused] == [BadInputReason.REPLAYED]
        and "replayed" in decoded.refused[0].detail
    )


def test_copies_of_one_advert_yield_one_reading_and_no_error() -> None:
    # The sealing reproduces the recorded advert byte for byte: it is the device's.
    assert sealed(8) == RECORDED
    decoder = flood()
    frame = sealed(10)
    assert decoder.decode(advert(frame, 1.0)) == wet(1.0)
    for at in (1.1, 1.2, 1.3, 1.0 + DAY):  # the device's own repeats, and the same a day later
        assert decoder.decode(advert(frame, at)) == Decoded("laundry-floor")


def test_an_older_advert_replayed_is_refused_and_counted() -> None:
    decoder = flood()
    assert decoder.decode(advert(sealed(10, WET), 1.0)) == wet(1.0)
    # A frame whose tag does not verify, with a huge counter, moves nothing.
    forged = bytearray(sealed(0xFFFFFF00, DRY))
    forged[-1] ^= 1
    refused = decoder.decode(advert(bytes(forged), 2.0))
    assert [e.reason for e in refused.refused] == [BadInputReason.DECRYPT_FAILED]
    assert "does not decrypt" in refused.refused[0].detail
    assert decoder.decode(advert(sealed(11, DRY), 60.0)) == dry(60.0)
    for at in (DAY, DAY + 1):  # every time: each one is counted
        assert replayed(decoder.decode(advert(sealed(10, WET), at)))
    assert decoder.decode(advert(sealed(12, DRY), DAY + 60)) == dry(DAY + 60)


def test_a_device_that_restarts_reports_again_once_its_new_count_is_steady() -> None:
    """New batteries: the count starts again from 0. Refused for RESTART_AFTER_S, then believed."""
    decoder = flood()
    assert decoder.decode(advert(sealed(5000, DRY), 0.0)) == dry(0.0)
    t = 1000.0
    assert replayed(decoder.decode(advert(sealed(0, DRY), t)))
    assert replayed(decoder.decode(advert(sealed(0, DRY), t + 0.1)))  # its copies too
    assert replayed(decoder.decode(advert(sealed(1, DRY), t + 60)))
    assert replayed(decoder.decode(advert(sealed(2, WET), t + RESTART_AFTER_S - 1)))
    assert decoder.decode(advert(sealed(3, WET), t + RESTART_AFTER_S)) == wet(t + RESTART_AFTER_S)
    later = t + RESTART_AFTER_S + 30
    assert decoder.decode(advert(sealed(4, WET), later)) == wet(later)
    assert replayed(decoder.decode(advert(sealed(3, WET), later + 1)))  # and counted from there


def test_replays_while_the_device_is_alive_are_never_believed() -> None:
    """A replayer sends old frames; the real device's next advert ends the watch each time."""
    decoder = flood()
    assert decoder.decode(advert(sealed(100, DRY), 0.0)) == dry(0.0)
    for n in range(5):
        start = 1000.0 + n * RESTART_AFTER_S
        assert replayed(decoder.decode(advert(sealed(10 + 2 * n, WET), start)))
        alive = start + RESTART_AFTER_S / 2
        assert decoder.decode(advert(sealed(101 + n, DRY), alive)) == dry(alive)
        assert replayed(decoder.decode(advert(sealed(11 + 2 * n, WET), start + RESTART_AFTER_S)))


def test_a_legacy_frame_for_a_device_with_a_v5_key_is_a_downgrade() -> None:
    """MiBeacon v3 has no tag: a neighbour without the key makes frames that 'decrypt'."""
    frame_control = (0x3000 | 0x40 | 0x08).to_bytes(2, "little")  # v3, object, encrypted
    header = frame_control + RECORDED[2:4] + b"\x21"
    ext = b"\x00\x00\x00"
    nonce = header + ext + RECORDED[5:11][:-1]
    cipher = AES.new(KEY, AES.MODE_CCM, nonce=nonce, mac_len=4)
    cipher.update(b"\x11")
    legacy_wet = header + cipher.encrypt(WET) + ext + b"\x00"  # even sealed with the key
    forged = bytes.fromhex("48306308818f07f39f9c422f00")  # random bytes, accepted before
    for frame in (legacy_wet, forged):
        decoder = flood()
        for at in (1.0, 2.0):
            decoded = decoder.decode(advert(frame, at))
            assert decoded.readings == ()
            assert [e.reason for e in decoded.refused] == [BadInputReason.DECRYPT_FAILED]
            assert "legacy" in decoded.refused[0].detail
        # and the genuine v5 advert still decodes
        assert decoder.decode(advert(RECORDED, 3.0)) == wet(3.0)


def test_frame_counter_rules() -> None:
    assert frame_counter(RECORDED) == 8
    assert frame_counter(sealed(0x12345678)) == 0x12345678
    count = FrameCounter()
    assert count.judge(7, 0.0) is Verdict.NEW  # the first since the hub started
    assert count.judge(7, 0.1) is Verdict.DUPLICATE
    assert count.judge(1_000_000, 1.0) is Verdict.NEW  # forward gaps are fine (missed adverts)
    # The 32-bit wrap (2**32 adverts: decades) looks like a restart and is handled as one.
    top = 2**32 - 1
    assert count.judge(top, 2.0) is Verdict.NEW
    assert count.judge(0, 10.0) is Verdict.REPLAYED
    assert count.judge(0, 11.0) is Verdict.REPLAYED
    assert count.judge(1, 10.0 + RESTART_AFTER_S) is Verdict.NEW
    assert count.judge(2, 20.0 + RESTART_AFTER_S) is Verdict.NEW
    # An older frame during a watch starts it again: the clock runs from that frame's arrival.
    assert count.judge(1000, 1000.0) is Verdict.NEW
    assert count.judge(500, 2000.0) is Verdict.REPLAYED
    assert count.judge(400, 2000.0 + RESTART_AFTER_S) is Verdict.REPLAYED
    assert count.judge(450, 2000.0 + RESTART_AFTER_S + 1) is Verdict.REPLAYED
    assert count.judge(451, 2000.0 + 2 * RESTART_AFTER_S) is Verdict.NEW
