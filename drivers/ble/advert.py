"""One received (or recorded) BLE advertisement, and its conversion to what the libraries decode.

`Advert` is the only shape the rest of the BLE driver sees: the scanner makes one from bleak's
callback, the replay reader from a recording line, and the decoder hands it to bthome-ble or
xiaomi-ble as the `BluetoothServiceInfoBleak` they expect (a plain `BluetoothServiceInfo` fails).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from habluetooth import BluetoothServiceInfoBleak

from drivers.mqtt.payload import utf8_text

#: The Bluetooth base UUID a 16-bit UUID is expanded into.
_BASE_UUID = "0000{:04x}-0000-1000-8000-00805f9b34fb"
_SHORT_UUID = re.compile(r"^(?:0x)?([0-9A-Fa-f]{4})$")
_FULL_UUID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)
MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


def uuid16(short: int) -> str:
    """The full 128-bit form of a 16-bit Bluetooth UUID (as bleak and the libraries key it)."""
    return _BASE_UUID.format(short)


#: BTHome v2, and v1 plain and encrypted (bthome-ble decodes all three).
BTHOME_UUIDS = frozenset({uuid16(0xFCD2), uuid16(0x181C), uuid16(0x181E)})
#: Xiaomi MiBeacon, and the Xiaomi plant sensor and scales xiaomi-ble also decodes.
XIAOMI_UUIDS = frozenset({uuid16(0xFE95), uuid16(0xFD50), uuid16(0x181D), uuid16(0x181B)})
#: Service data the BLE driver decodes; adverts without any are neighbours' noise.
KNOWN_UUIDS = BTHOME_UUIDS | XIAOMI_UUIDS


def normalize_uuid(text: str) -> str:
    """`fcd2`, `0xFCD2` or the full form, as the lower-case full form; ValueError otherwise."""
    if m := _SHORT_UUID.fullmatch(text):
        return uuid16(int(m[1], 16))
    if _FULL_UUID.fullmatch(text):
        return text.lower()
    raise ValueError(f"not a Bluetooth UUID: {text!r:.50}")


def short_uuid(uuid: str) -> str:
    """`fcd2` for a UUID on the Bluetooth base, else the full form (for compact recordings)."""
    if uuid.startswith("0000") and uuid.endswith(_BASE_UUID[8:]):
        return uuid[4:8]
    return uuid


@dataclass(frozen=True, slots=True, eq=True)
class Advert:
    """What one advertisement said. `time` is POSIX seconds when it was received.

    The mappings are not copied or frozen: treat them as read-only (they are shared with the
    library's view of the advert).
    """

    address: str  # upper-case MAC, e.g. A4:C1:38:8D:18:B2
    rssi: int
    time: float
    name: str | None = None
    service_data: Mapping[str, bytes] = field(default_factory=dict)  # full 128-bit UUID keys
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()

    __hash__ = None  # type: ignore[assignment]  # holds dicts: equal by value, never hashed

    def is_known(self) -> bool:
        """Whether it carries service data the BLE driver decodes (BTHome or Xiaomi)."""
        return not KNOWN_UUIDS.isdisjoint(self.service_data)

    def service_info(self, source: str = "homeguard") -> BluetoothServiceInfoBleak:
        """The libraries' view of this advert (`name` defaults to the address, as BlueZ does)."""
        name = self.name or self.address
        return BluetoothServiceInfoBleak(
            name=name,
            address=self.address,
            rssi=self.rssi,
            manufacturer_data=dict(self.manufacturer_data),
            service_data=dict(self.service_data),
            service_uuids=list(self.service_uuids),
            source=source,
            device=BLEDevice(self.address, name, None),
            advertisement=None,
            connectable=False,
            time=self.time,
            tx_power=None,
        )


def from_bleak(device: BLEDevice, data: AdvertisementData, at: float) -> Advert:
    """An `Advert` from bleak's detection callback (bleak keys service data by full UUIDs)."""
    return Advert(
        address=device.address.upper(),
        rssi=data.rssi,
        time=at,
        # BlueZ hands over what the device sent; a name must be text UTF-8 can hold (the store).
        name=None if data.local_name is None else utf8_text(data.local_name),
        service_data=data.service_data,
        manufacturer_data=data.manufacturer_data,
        service_uuids=tuple(data.service_uuids),
    )


__all__ = [
    "BTHOME_UUIDS",
    "KNOWN_UUIDS",
    "MAC",
    "XIAOMI_UUIDS",
    "Advert",
    "from_bleak",
    "normalize_uuid",
    "short_uuid",
    "uuid16",
]
