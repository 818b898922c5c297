"""BLE sensors: BTHome and Xiaomi advertisements, decoded by bthome-ble and xiaomi-ble.

`BleService` runs the adapter (bleak, passive where BlueZ can) or a recording (`ReplaySource`)
through the `Decoder` into the hub's sink; `recording` is the replay file format.
"""

# First, before anything imports xiaomi_ble: keep its Xiaomi-cloud client (aiohttp) out.
from drivers.ble import _offline_xiaomi  # noqa: F401
from drivers.ble.advert import Advert
from drivers.ble.decode import Decoded, Decoder
from drivers.ble.recording import Recording, RecordingWriter, read_recording
from drivers.ble.scanner import NO_ADAPTER, BleakSource, bridge_id
from drivers.ble.service import BleService
from drivers.ble.source import AdvertSource, BridgeState, ReplaySource

__all__ = [
    "NO_ADAPTER",
    "Advert",
    "AdvertSource",
    "BleService",
    "BleakSource",
    "BridgeState",
    "Decoded",
    "Decoder",
    "Recording",
    "RecordingWriter",
    "ReplaySource",
    "bridge_id",
    "read_recording",
]
