"""Advertisements → readings, through bthome-ble and xiaomi-ble. Pure: no I/O, no clock.

One library parser per configured device, holding its bind key. bthome-ble keeps per-device
state itself (the packet id that filters duplicates, the encryption counter that refuses replays);
xiaomi-ble keeps none, so for a Xiaomi device with a key the decoder keeps its MiBeacon frame
counter (`drivers.ble.mibeacon`): a copy of an advert already seen yields nothing, an older one is
refused. The libraries' entities become readings in `drivers.ble.entities`. What cannot be used is
returned as a `BadInputError` naming why:

* `DECRYPT_FAILED`: an encrypted advert that does not decrypt with the configured key, an
  encrypted advert from a device configured without a key, a plaintext advert carrying values
  or a MiBeacon v2/v3 (legacy, unauthenticated) encrypted advert from a device configured with
  one (a downgrade: spoofed, or the device was reset), or a Xiaomi advert whose frame counter is
  behind the device's (a replay; see `FrameCounter` for a device that restarts).
* `UNSUPPORTED`: a measurement in a unit the hub cannot convert (°F, say).
* `WRONG_TYPE` / `OUT_OF_RANGE` / `NOT_FINITE`: `measurement_value`'s checks.
* `BAD_FRAME`: the library failed on the bytes (a malformed advert).

Adverts from addresses not configured are ignored, except that a BTHome or Xiaomi device the
library recognises is announced once as `DeviceDiscovered` (a bounded number of addresses).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bthome_ble import BTHomeBluetoothDeviceData
from bthome_ble.parser import EncryptionScheme as BTHomeEncryption
from sensor_state_data import SensorData, SensorUpdate
from xiaomi_ble import EncryptionScheme as XiaomiEncryption
from xiaomi_ble import XiaomiBluetoothDeviceData

from drivers.ble.advert import BTHOME_UUIDS, XIAOMI_UUIDS, Advert, uuid16
from drivers.ble.entities import has_values, to_readings
from drivers.ble.mibeacon import FrameCounter, Verdict, frame_counter
from hub.config import BLE_ADAPTERS, DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import DeviceDiscovered, Reading

_log = logging.getLogger(__name__)

#: How many unconfigured addresses are remembered (announced once, or not recognised).
MAX_DISCOVERED = 512


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one advert yielded. `device_id` is the configured device it came from, if any."""

    device_id: str | None = None
    readings: tuple[Reading, ...] = ()
    refused: tuple[BadInputError, ...] = ()
    discovered: DeviceDiscovered | None = None


NOTHING = Decoded()


def discovered_id(address: str) -> str:
    """Our id for an unconfigured BLE device: `ble-` and its address, e.g. `ble-a4c1388d18b2`."""
    return "ble-" + address.replace(":", "").lower()


class Decoder:
    """Decodes adverts of the configured BTHome and Xiaomi devices (others are ignored)."""

    def __init__(self, devices: Iterable[DeviceConfig]) -> None:
        self._devices: dict[str, _Device] = {}
        for d in devices:
            if d.adapter not in BLE_ADAPTERS or d.address is None:
                continue
            address = d.address.upper()
            if address in self._devices:
                _log.warning(
                    "BLE devices %s and %s have the same address %s: %s is ignored",
                    self._devices[address].device_id,
                    d.id,
                    address,
                    d.id,
                )
                continue
            key = bytes.fromhex(d.bind_key) if d.bind_key is not None else None
            self._devices[address] = (_BTHome if d.adapter == "bthome" else _Xiaomi)(d.id, key)
        self._seen: set[str] = set()

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self._devices)

    def decode(self, advert: Advert, at: float | None = None) -> Decoded:
        """The readings in one advert, stamped `at` (default: when it was received)."""
        device = self._devices.get(advert.address)
        when = advert.time if at is None else at
        if device is None:
            return self._discover(advert, when)
        if not device.accepts(advert):
            return NOTHING
        try:
            update, refused = device.update(advert, when)
        except Exception as err:  # noqa: BLE001  (the library choked on the bytes: refuse them)
            why = f"the {device.adapter} decoder failed: {type(err).__name__}: {err}"
            return Decoded(device.device_id, (), (BadInputError(BadInputReason.BAD_FRAME, why),))
        if refused is not None:
            return Decoded(device.device_id, (), (refused,))
        readings, errors = (
            ([], []) if update is None else to_readings(device.device_id, update, when)
        )
        if not readings and not errors:
            return Decoded(device.device_id)
        return Decoded(device.device_id, tuple(readings), tuple(errors))

    def _discover(self, advert: Advert, at: float) -> Decoded:
        address = advert.address
        if address in self._seen or len(self._seen) >= MAX_DISCOVERED:
            return NOTHING
        kind: type[_Device]
        if not BTHOME_UUIDS.isdisjoint(advert.service_data):
            kind = _BTHome
        elif not XIAOMI_UUIDS.isdisjoint(advert.service_data):
            kind = _Xiaomi
        else:
            return NOTHING
        self._seen.add(address)
        probe = kind(discovered_id(address), None)
        try:
            update, _ = probe.update(advert, at)
        except Exception:  # noqa: BLE001  (junk from a neighbour: not a device we can announce)
            return NOTHING
        if update is None:  # a probe has no key, so no frame counter: never happens
            return NOTHING
        info = update.devices.get(None)
        if info is None or info.model is None:
            return NOTHING  # the library does not recognise it
        readings, _ = to_readings(probe.device_id, update, at)
        exposes = tuple(sorted({r.measurement.value for r in readings}))
        name = advert.name or info.name or update.title or address
        event = DeviceDiscovered(probe.device_id, probe.adapter, name, info.model, exposes, at)
        return Decoded(discovered=event)


class _Device:
    adapter = ""
    uuids: frozenset[str] = frozenset()

    def __init__(self, device_id: str, bind_key: bytes | None) -> None:
        self.device_id = device_id
        self.has_key = bind_key is not None

    def accepts(self, advert: Advert) -> bool:
        """Whether the advert carries this library's service data (not a name-only response)."""
        return not self.uuids.isdisjoint(advert.service_data)

    def update(self, advert: Advert, at: float) -> tuple[SensorUpdate | None, BadInputError | None]:
        """The library's update (None: a copy of an advert already seen), and the refusal of the
        whole advert (a decryption problem, a replay). `at`: when it was received."""
        raise NotImplementedError


class _BTHome(_Device):
    adapter = "bthome"
    uuids = BTHOME_UUIDS

    def __init__(self, device_id: str, bind_key: bytes | None) -> None:
        super().__init__(device_id, bind_key)
        self._parser = BTHomeBluetoothDeviceData(bindkey=bind_key)

    def update(self, advert: Advert, at: float) -> tuple[SensorUpdate | None, BadInputError | None]:
        parser = self._parser  # bthome-ble keeps the packet id and encryption counter itself
        update = _fresh_update(parser, advert)
        if parser.downgrade_detected:  # bthome-ble drops a plaintext advert once a key is set
            return update, _downgrade()
        if parser.encryption_scheme is BTHomeEncryption.BTHOME_BINDKEY:
            if not self.has_key:
                return update, _no_key()
            if parser.decryption_failed:
                return update, _wrong_key()
        return update, None


class _Xiaomi(_Device):
    adapter = "xiaomi"
    uuids = XIAOMI_UUIDS

    def __init__(self, device_id: str, bind_key: bytes | None) -> None:
        super().__init__(device_id, bind_key)
        self._parser = XiaomiBluetoothDeviceData(bindkey=bind_key)
        self._count = FrameCounter()

    def update(self, advert: Advert, at: float) -> tuple[SensorUpdate | None, BadInputError | None]:
        parser = self._parser
        # xiaomi-ble sets the scheme only when an advert is encrypted and never clears it, and
        # clears `decryption_failed` only when a v4/v5 tag verifies: reset both so that they
        # describe this advert.
        parser.encryption_scheme = XiaomiEncryption.NONE
        parser.decryption_failed = True
        update = _fresh_update(parser, advert)
        refused = self._refusal(update)
        if refused is not None or parser.encryption_scheme is XiaomiEncryption.NONE:
            return update, refused
        # A v4/v5 frame whose tag verified with the key: its counter is the device's own.
        verdict = self._count.judge(frame_counter(advert.service_data[_MIBEACON]), at)
        if verdict is Verdict.DUPLICATE:
            return None, None
        return update, _replayed() if verdict is Verdict.REPLAYED else None

    def _refusal(self, update: SensorUpdate) -> BadInputError | None:
        scheme = self._parser.encryption_scheme
        if scheme is XiaomiEncryption.NONE:
            return _downgrade() if self.has_key and has_values(update) else None
        if not self.has_key:
            return _no_key()
        if scheme is not XiaomiEncryption.MIBEACON_4_5:
            # MiBeacon v2/v3 ("legacy") has no authentication tag: anyone can make a frame that
            # decrypts to something. Its keys were 12 bytes; a configured key is 16 (32 hex
            # digits), the key of v4/v5, so a legacy frame for it is a downgrade.
            return _legacy_downgrade()
        return _wrong_key() if self._parser.decryption_failed else None


_MIBEACON = uuid16(0xFE95)


def _fresh_update(parser: SensorData, advert: Advert) -> SensorUpdate:
    """The library's update with only what this advert said.

    sensor-state-data's `SensorData` keeps every entity it has ever updated in its `*_updates`
    dicts and returns them all from each `update()` (Home Assistant treats the update as the
    current state). The hub wants events: a battery-only packet must not repeat the last
    temperature as a new reading. So the pending updates are cleared first; the parser's own state
    (packet id, encryption counter, key) is kept.
    """
    parser._sensor_descriptions_updates.clear()
    parser._sensor_values_updates.clear()
    parser._binary_sensor_descriptions_updates.clear()
    parser._binary_sensor_values_updates.clear()
    return parser.update(advert.service_info())


def _downgrade() -> BadInputError:
    return BadInputError(
        BadInputReason.DECRYPT_FAILED,
        "a plaintext advert from a device configured with a bind key (spoofed, or the device "
        "lost its key): ignored",
    )


def _legacy_downgrade() -> BadInputError:
    return BadInputError(
        BadInputReason.DECRYPT_FAILED,
        "a MiBeacon v2/v3 (legacy, unauthenticated) advert from a device configured with a "
        "v4/v5 bind key (spoofed): ignored",
    )


def _replayed() -> BadInputError:
    return BadInputError(
        BadInputReason.REPLAYED,
        "a replayed advert: its frame counter is behind the device's (recorded and sent again, "
        "or the device restarted: then accepted once its new count is steady)",
    )


def _no_key() -> BadInputError:
    return BadInputError(
        BadInputReason.DECRYPT_FAILED, "an encrypted advert, and no bind_key is configured"
    )


def _wrong_key() -> BadInputError:
    return BadInputError(
        BadInputReason.DECRYPT_FAILED,
        "the advert does not decrypt with the configured bind_key (wrong key, or spoofed)",
    )


#: The libraries' loggers: they warn about every advert that fails (a wrong key: every few seconds).
_LIBRARY_LOGGERS = ("bthome_ble.parser", "xiaomi_ble.parser")  # a filter is per logger


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While it lasts, the libraries' records below ERROR are dropped: the decoder reports the
    same problems as refusals, which the hub counts and logs once per cause."""
    quiet = _BelowError()
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def ble_devices(devices: Sequence[DeviceConfig]) -> list[DeviceConfig]:
    """The devices the BLE driver decodes."""
    return [d for d in devices if d.adapter in BLE_ADAPTERS]


__all__ = [
    "MAX_DISCOVERED",
    "NOTHING",
    "Decoded",
    "Decoder",
    "ble_devices",
    "discovered_id",
    "quiet_libraries",
]
