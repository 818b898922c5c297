"""The BLE decoder: recorded adverts of real devices (tests/payloads/ble, sources named there) →
exactly the readings, refusals and discoveries the hub should see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drivers.ble.advert import Advert
from drivers.ble.decode import Decoder
from drivers.ble.recording import read_recording
from hub.config import DeviceConfig
from hub.errors import BadInputReason
from hub.events import DeviceDiscovered, Reading
from hub.measurements import Measurement as M

PAYLOADS = Path(__file__).parent / "payloads" / "ble"

ATC = "A4:C1:38:8D:18:B2"
BTHOME_ENCRYPTED = "54:48:E6:8F:80:A5"
BTHOME_KEY = "231d39c1d7cc1ab1aee224cd096db932"
BTHOME_WRONG_KEY = "814aac74c4f17b6c1581e1ab87816b99"
FLOOD_WET = "54:EF:44:E0:27:BC"  # SJWS01LM
FLOOD_WET_KEY = "255e6cabb39b2eddd0de992b9fee2bf2"
FLOOD_DRY = "A4:C1:38:B9:4C:67"  # RS1BB
FLOOD_DRY_KEY = "33ede53321bc73c790a8daae4581f3d5"
FLOOD_BUTTON = "A4:C1:38:08:63:01"
LYWSD03MMC = "A4:C1:38:B4:94:4C"
LYWSD03MMC_ENCRYPTED = "A4:C1:38:02:83:F4"
LYWSD03MMC_KEY = "e9ea895fac7cca6d30532432a516f3a8"
SMOKE = "54:EF:44:E3:9C:BC"
SMOKE_KEY = "5b51a7c91cde6707c9ef18dfda143a58"


def adverts(name: str) -> dict[str, list[Advert]]:
    recording = read_recording(PAYLOADS / name)
    assert recording.bad_lines == ()
    by_address: dict[str, list[Advert]] = {}
    for advert in recording.adverts:
        by_address.setdefault(advert.address, []).append(advert)
    return by_address


BTHOME = adverts("bthome.jsonl")
XIAOMI = adverts("xiaomi.jsonl")


def device(device_id: str, adapter: str, address: str, bind_key: str | None = None) -> DeviceConfig:
    return DeviceConfig(id=device_id, adapter=adapter, address=address, bind_key=bind_key)  # type: ignore[arg-type]  # adapter is a Literal in the config


def test_bthome_v2_plain_thermometer() -> None:
    decoder = Decoder([device("lounge", "bthome", ATC)])
    first, battery_only = BTHOME[ATC]
    decoded = decoder.decode(first)
    assert decoded.device_id == "lounge"
    assert decoded.readings == (
        Reading("lounge", M.TEMPERATURE, 25.06, first.time),
        Reading("lounge", M.HUMIDITY, 50.55, first.time),
    )
    assert decoded.refused == ()
    # The next packet carries only the battery: the last temperature is not repeated as new.
    assert decoder.decode(battery_only, at=5.0).readings == (
        Reading("lounge", M.BATTERY, 93.0, 5.0),
    )


def test_bthome_v2_encrypted_with_its_key() -> None:
    decoder = Decoder([device("bedroom", "bthome", BTHOME_ENCRYPTED, BTHOME_KEY)])
    (advert,) = BTHOME[BTHOME_ENCRYPTED]
    decoded = decoder.decode(advert, at=7.0)
    assert decoded.readings == (
        Reading("bedroom", M.TEMPERATURE, 25.06, 7.0),
        Reading("bedroom", M.HUMIDITY, 50.55, 7.0),
    )
    assert decoded.refused == ()


@pytest.mark.parametrize(
    ("bind_key", "why"),
    [(BTHOME_WRONG_KEY, "does not decrypt"), (None, "no bind_key is configured")],
)
def test_bthome_encrypted_with_the_wrong_key_or_none_is_refused(
    bind_key: str | None, why: str
) -> None:
    decoder = Decoder([device("bedroom", "bthome", BTHOME_ENCRYPTED, bind_key)])
    (advert,) = BTHOME[BTHOME_ENCRYPTED]
    for _ in range(3):  # every time, not only the first (each one is counted)
        decoded = decoder.decode(advert)
        assert decoded.device_id == "bedroom"
        assert decoded.readings == ()
        (err,) = decoded.refused
        assert err.reason is BadInputReason.DECRYPT_FAILED
        assert why in err.detail
        assert BTHOME_WRONG_KEY not in str(err)


def test_a_plaintext_advert_for_a_device_with_a_key_is_a_downgrade() -> None:
    decoder = Decoder([device("lounge", "bthome", ATC, BTHOME_KEY)])
    decoded = decoder.decode(BTHOME[ATC][0])
    assert decoded.readings == ()
    assert [e.reason for e in decoded.refused] == [BadInputReason.DECRYPT_FAILED]
    assert "plaintext" in decoded.refused[0].detail


def test_xiaomi_flood_detectors_wet_and_dry() -> None:
    decoder = Decoder(
        [
            device("laundry-floor", "xiaomi", FLOOD_WET, FLOOD_WET_KEY),
            device("boiler-floor", "xiaomi", FLOOD_DRY, FLOOD_DRY_KEY),
        ]
    )
    wet = decoder.decode(XIAOMI[FLOOD_WET][0], at=1.0)
    dry = decoder.decode(XIAOMI[FLOOD_DRY][0], at=2.0)
    assert wet.readings == (Reading("laundry-floor", M.WATER_LEAK, True, 1.0),)
    assert dry.readings == (Reading("boiler-floor", M.WATER_LEAK, False, 2.0),)
    assert wet.refused == dry.refused == ()


def test_xiaomi_flood_detector_with_the_wrong_key_is_refused_not_dry() -> None:
    decoder = Decoder([device("laundry-floor", "xiaomi", FLOOD_WET, FLOOD_DRY_KEY)])
    decoded = decoder.decode(XIAOMI[FLOOD_WET][0])
    assert decoded.readings == ()
    assert [e.reason for e in decoded.refused] == [BadInputReason.DECRYPT_FAILED]


def test_xiaomi_encrypted_without_a_key_is_refused() -> None:
    decoder = Decoder([device("laundry-floor", "xiaomi", FLOOD_WET)])
    decoded = decoder.decode(XIAOMI[FLOOD_WET][0])
    assert [e.reason for e in decoded.refused] == [BadInputReason.DECRYPT_FAILED]
    assert "no bind_key" in decoded.refused[0].detail


def test_xiaomi_button_press_has_no_measurement() -> None:
    decoder = Decoder([device("hall-flood", "xiaomi", FLOOD_BUTTON)])
    decoded = decoder.decode(XIAOMI[FLOOD_BUTTON][0])
    assert decoded.device_id == "hall-flood"
    assert decoded.readings == ()
    assert decoded.refused == ()


def test_xiaomi_thermometers_plain_and_encrypted_and_a_smoke_detector() -> None:
    decoder = Decoder(
        [
            device("kitchen", "xiaomi", LYWSD03MMC),
            device("office", "xiaomi", LYWSD03MMC_ENCRYPTED, LYWSD03MMC_KEY),
            device("hall-smoke", "xiaomi", SMOKE, SMOKE_KEY),
        ]
    )
    assert decoder.decode(XIAOMI[LYWSD03MMC][0], at=1.0).readings == (
        Reading("kitchen", M.TEMPERATURE, 27.2, 1.0),
        Reading("kitchen", M.HUMIDITY, 49.0, 1.0),
    )
    assert decoder.decode(XIAOMI[LYWSD03MMC_ENCRYPTED][0], at=2.0).readings == (
        Reading("office", M.HUMIDITY, 46.0, 2.0),
    )
    assert decoder.decode(XIAOMI[SMOKE][0], at=3.0).readings == (
        Reading("hall-smoke", M.SMOKE, True, 3.0),
    )


def test_a_bthome_device_configured_as_xiaomi_yields_nothing() -> None:
    decoder = Decoder([device("lounge", "xiaomi", ATC)])
    decoded = decoder.decode(BTHOME[ATC][0])
    assert decoded.readings == ()
    assert decoded.refused == ()


def test_unconfigured_devices_are_discovered_once_and_never_decoded() -> None:
    decoder = Decoder([])
    thermometer = XIAOMI[LYWSD03MMC][0]
    decoded = decoder.decode(thermometer)
    assert decoded.device_id is None
    assert decoded.readings == ()
    assert decoded.refused == ()
    assert decoded.discovered == DeviceDiscovered(
        device_id="ble-a4c138b4944c",
        adapter="xiaomi",
        name="Temperature/Humidity Sensor 944C",
        model="LYWSD03MMC",
        exposes=("humidity", "temperature"),
        at=thermometer.time,
    )
    assert decoder.decode(thermometer).discovered is None  # once per address
    atc = decoder.decode(BTHOME[ATC][0]).discovered
    assert atc is not None
    assert (atc.device_id, atc.adapter, atc.name) == ("ble-a4c1388d18b2", "bthome", "ATC_8D18B2")
    # An encrypted neighbour is still announced; what it measures is unknown without its key.
    flood = decoder.decode(XIAOMI[FLOOD_WET][0]).discovered
    assert flood is not None
    assert (flood.model, flood.exposes) == ("SJWS01LM", ())


def test_an_advert_without_bthome_or_xiaomi_data_is_ignored() -> None:
    decoder = Decoder([device("lounge", "bthome", ATC)])
    name_only = Advert(ATC, -60, 1.0, name="ATC_8D18B2")  # a scan response
    assert decoder.decode(name_only).readings == ()
    neighbour = Advert("11:22:33:44:55:66", -70, 1.0, manufacturer_data={76: b"\x10\x05"})
    assert decoder.decode(neighbour).discovered is None


def test_truncated_service_data_is_refused_as_a_bad_frame() -> None:
    decoder = Decoder([device("lounge", "bthome", ATC)])
    (service_uuid,) = BTHOME[ATC][0].service_data
    decoded = decoder.decode(Advert(ATC, -60, 1.0, service_data={service_uuid: b""}))
    assert [e.reason for e in decoded.refused] == [BadInputReason.BAD_FRAME]


def test_lower_case_configured_addresses_match() -> None:
    decoder = Decoder([device("lounge", "bthome", ATC.lower())])
    assert decoder.addresses == frozenset({ATC})
    assert len(decoder.decode(BTHOME[ATC][0]).readings) == 2


def test_a_plaintext_xiaomi_advert_for_a_device_with_a_key_is_a_downgrade() -> None:
    decoder = Decoder([device("kitchen", "xiaomi", LYWSD03MMC, LYWSD03MMC_KEY)])
    decoded = decoder.decode(XIAOMI[LYWSD03MMC][0])
    assert decoded.readings == ()
    assert [e.reason for e in decoded.refused] == [BadInputReason.DECRYPT_FAILED]
    assert "plaintext" in decoded.refused[0].detail


def test_a_later_good_advert_decodes_after_a_bad_one() -> None:
    """A failure leaves no stale state behind: the next advert is judged on its own."""
    decoder = Decoder([device("laundry-floor", "xiaomi", FLOOD_WET, FLOOD_WET_KEY)])
    wet = XIAOMI[FLOOD_WET][0]
    (service_uuid,) = wet.service_data
    truncated = Advert(FLOOD_WET, -60, wet.time, service_data={service_uuid: b"\x58\x59"})
    assert decoder.decode(truncated).readings == ()
    assert decoder.decode(wet, at=9.0).readings == (
        Reading("laundry-floor", M.WATER_LEAK, True, 9.0),
    )


def test_two_devices_with_one_address_keep_the_first(caplog: pytest.LogCaptureFixture) -> None:
    decoder = Decoder([device("one", "bthome", ATC), device("two", "bthome", ATC)])
    assert decoder.decode(BTHOME[ATC][0]).device_id == "one"
    assert "same address" in caplog.text


def test_entities_units_are_converted_or_refused() -> None:
    """The library's output type, built directly: what no recorded advert here exercises."""
    from decimal import Decimal

    from sensor_state_data import (
        BinarySensorDescription,
        BinarySensorDeviceClass,
        BinarySensorValue,
        DeviceKey,
        SensorDescription,
        SensorDeviceClass,
        SensorUpdate,
        SensorValue,
    )

    from drivers.ble.entities import to_readings

    def sensor(
        key: str, cls: SensorDeviceClass, unit: str | None, value: str | int | float | Decimal
    ) -> tuple[DeviceKey, SensorDescription, SensorValue]:
        k = DeviceKey(key, None)
        description = SensorDescription(
            device_key=k,
            device_class=cls,
            native_unit_of_measurement=unit,  # type: ignore[arg-type]  # typed as its Units enum; the libraries pass plain strings too
        )
        return k, description, SensorValue(device_key=k, name=key, native_value=value)

    sensors = [
        sensor("voltage", SensorDeviceClass.VOLTAGE, "mV", 3012),
        sensor("temperature", SensorDeviceClass.TEMPERATURE, "°F", 70.0),
        sensor("volume_flow_rate", SensorDeviceClass.VOLUME_FLOW_RATE, "m³/h", Decimal("0.6")),
        sensor("humidity", SensorDeviceClass.HUMIDITY, "%", 140),
        sensor("signal_strength", SensorDeviceClass.SIGNAL_STRENGTH, "dBm", -60),
        sensor("battery", SensorDeviceClass.BATTERY, "%", "full"),
    ]
    leak = DeviceKey("moisture", None)
    update = SensorUpdate(
        title=None,
        devices={},
        entity_descriptions={k: d for k, d, _ in sensors},
        entity_values={k: v for k, _, v in sensors},
        binary_entity_descriptions={
            leak: BinarySensorDescription(
                device_key=leak, device_class=BinarySensorDeviceClass.MOISTURE
            )
        },
        binary_entity_values={
            leak: BinarySensorValue(device_key=leak, name="Moisture", native_value=True)
        },
    )
    readings, errors = to_readings("d", update, 1.0)
    assert readings == [
        Reading("d", M.VOLTAGE, 3.012, 1.0),
        Reading("d", M.FLOW, 10.0, 1.0),
        Reading("d", M.WATER_LEAK, True, 1.0),
    ]
    assert [e.reason for e in errors] == [
        BadInputReason.UNSUPPORTED,  # °F
        BadInputReason.OUT_OF_RANGE,  # 140 %
        BadInputReason.WRONG_TYPE,  # "full"
    ]


def test_the_xiaomi_cloud_client_is_never_loaded() -> None:
    """xiaomi-ble's Xiaomi-cloud client (aiohttp: 12 MiB) stays out of the hub; decoding works."""
    code = "import sys, drivers.ble, xiaomi_ble; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
