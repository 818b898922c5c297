"""The `[[devices]]` table: which keys each adapter takes, and the rules across devices.

Errors point at the offending key: `DeviceKeyError` (a key of one device) and `DeviceError` (a
rule across devices, at `devices[i].key`) carry where, so `hub.config` can name the file's line.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9_-]+$"


class Section(BaseModel):
    """A table of the configuration: unknown keys are refused (a typo is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Adapter = Literal[
    "native",
    "zigbee2mqtt",
    "shelly",
    "tasmota",
    "rtl_433",
    "home_assistant",
    "modbus",
    "dsmr",
    "json_lines",
    "bthome",
    "xiaomi",
]
SERIAL_ADAPTERS = frozenset({"modbus", "dsmr", "json_lines"})
BLE_ADAPTERS = frozenset({"bthome", "xiaomi"})
#: Eastron meters with a built-in Modbus register profile.
MODBUS_MODELS = ("SDM120", "SDM220", "SDM630")
#: Each adapter's keys beyond id/adapter/name/location/role (anything else is refused).
_ADAPTER_KEYS: dict[str, frozenset[str]] = {
    "rtl_433": frozenset({"model", "device_id"}),
    "modbus": frozenset({"port", "baudrate", "parity", "unit", "model", "poll_s"}),
    "dsmr": frozenset({"port", "baudrate"}),
    "json_lines": frozenset({"port", "baudrate"}),
    "bthome": frozenset({"address", "bind_key"}),
    "xiaomi": frozenset({"address", "bind_key"}),
}
_OPTIONAL_KEYS = (
    "model",
    "device_id",
    "port",
    "baudrate",
    "parity",
    "unit",
    "poll_s",
    "address",
    "bind_key",
)
_BLE_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
Role = Literal["water_valve", "siren", "power_cut"]


class DeviceConfig(Section):
    id: Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
    adapter: Adapter
    name: str | None = None
    location: str | None = None
    role: Role | None = None
    model: str | None = None  # rtl_433: the decoder's `model`, e.g. "Govee-Water"
    #: rtl_433: the transmitter's `id` (a number for most models; a few print hex strings)
    device_id: Annotated[int, Field(ge=0)] | str | None = None
    #: serial adapters: the port (`/dev/ttyUSB0`, better a stable `/dev/serial/by-id/...` path)
    port: Annotated[str, Field(min_length=1)] | None = None
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] | None = None
    parity: Literal["N", "E", "O"] | None = None  # modbus: Eastron meters default to N
    unit: Annotated[int, Field(ge=1, le=247)] | None = None  # modbus: the meter's address
    poll_s: Annotated[float, Field(ge=0.5, le=3600)] | None = None  # modbus: polling interval
    #: BLE adapters: the advertiser's MAC address
    address: str | None = None
    #: BLE: the 32-hex-digit key of an encrypted BTHome or Xiaomi device (a secret: the file
    #: holding it must not be readable by everyone)
    bind_key: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{32}$")] | None = Field(
        default=None, repr=False
    )

    @property
    def native_name(self) -> str:
        """The device's name in its own ecosystem (defaults to our id; rtl_433: model:id)."""
        if self.adapter == "rtl_433" and self.model is not None:
            return f"{self.model}:{self.device_id}"
        return self.name if self.name is not None else self.id

    @model_validator(mode="after")
    def _adapter_keys(self) -> DeviceConfig:
        allowed = _ADAPTER_KEYS.get(self.adapter, frozenset())
        for key in _OPTIONAL_KEYS:
            if getattr(self, key) is not None and key not in allowed:
                users = sorted(a for a, keys in _ADAPTER_KEYS.items() if key in keys)
                raise DeviceKeyError(key, f"`{key}` is for {' and '.join(users)} devices only")
        if self.adapter == "rtl_433" and (self.model is None or self.device_id is None):
            raise ValueError("an rtl_433 device needs `model` and `device_id`")
        if self.adapter in SERIAL_ADAPTERS and self.port is None:
            raise ValueError(f"a {self.adapter} device needs `port` (its serial device)")
        if self.adapter == "modbus" and self.model not in MODBUS_MODELS:
            message = f"a modbus device needs `model`, one of {', '.join(MODBUS_MODELS)}"
            raise ValueError(message) if self.model is None else DeviceKeyError("model", message)
        if self.adapter in BLE_ADAPTERS and (
            self.address is None or not _BLE_ADDRESS.fullmatch(self.address)
        ):
            message = f"a {self.adapter} device needs `address`, e.g. A4:C1:38:12:34:56"
            raise (
                ValueError(message) if self.address is None else DeviceKeyError("address", message)
            )
        if self.role is not None and self.adapter not in _ACTUATOR_ADAPTERS:
            raise DeviceKeyError(
                "role", f"{self.adapter} devices only report: they cannot have a role"
            )
        return self

    @model_validator(mode="after")
    def _topic_name(self) -> DeviceConfig:
        """Shelly and Tasmota names are MQTT topics, with `#N` for a relay channel."""
        if self.adapter not in ("shelly", "tasmota"):
            return self
        m = _TOPIC_NAME.fullmatch(self.native_name)
        lowest = 1 if self.adapter == "tasmota" else 0
        if m is None or (m["channel"] is not None and not lowest <= int(m["channel"]) <= 32):
            raise DeviceNameError(
                f"a {self.adapter} name is the device's MQTT topic (no + or #, no leading or "
                f"trailing /), optionally with #N for channel {lowest}..32"
            )
        return self


def check_devices(devices: list[DeviceConfig]) -> None:
    """The rules across devices (raises `DeviceError`)."""
    _check_unique(devices)
    _check_serial_ports(devices)
    _check_power_cuts(devices)


def _check_unique(devices: list[DeviceConfig]) -> None:
    seen: set[str] = set()
    names: set[tuple[str, str]] = set()
    for i, d in enumerate(devices):
        if d.id in seen:
            raise DeviceError(i, "id", f"device id {d.id!r} is used twice")
        seen.add(d.id)
        if (d.adapter, d.native_name) in names:
            raise DeviceError(i, "name", f"two {d.adapter} devices are named {d.native_name!r}")
        names.add((d.adapter, d.native_name))


def _check_power_cuts(devices: list[DeviceConfig]) -> None:
    """A `power_cut` is switched off when a sensor in its `location` gets wet (locations compared
    exactly): without one, or in a place no other device is in, it would never be."""
    for i, d in enumerate(devices):
        if d.role != "power_cut":
            continue
        if d.location is None:
            raise DeviceError(
                i, "role", "a power_cut needs the `location` of the leak sensors it protects"
            )
        others = {o.location for o in devices if o is not d and o.location is not None}
        if d.location in others:
            continue
        near = sorted(o for o in others if o.strip().casefold() == d.location.strip().casefold())
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise DeviceError(
            i,
            "location",
            f"no other device is in location {d.location!r}{hint}: the hub switches a "
            "power_cut off only when a leak sensor in its location gets wet",
        )


def _check_serial_ports(devices: list[DeviceConfig]) -> None:
    """One protocol per port; one DSMR meter or JSON board per port; Modbus meters sharing a
    bus agree on its line settings and have distinct unit addresses."""
    first: dict[str, DeviceConfig] = {}
    units: dict[tuple[str, int], str] = {}
    for i, d in enumerate(devices):
        if d.port is None:
            continue
        other = first.setdefault(d.port, d)
        if other is not d:
            if other.adapter != d.adapter or d.adapter != "modbus":
                raise DeviceError(
                    i, "port", f"{d.port} is already {other.id}'s ({other.adapter}) port"
                )
            if _line_settings(d) != _line_settings(other):
                raise DeviceError(
                    i, "port", f"meters on {d.port} must share {other.id}'s baudrate and parity"
                )
        unit = d.unit or 1
        if d.adapter == "modbus" and units.setdefault((d.port, unit), d.id) != d.id:
            raise DeviceError(
                i, "unit", f"unit {unit} on {d.port} is already {units[(d.port, unit)]}"
            )


#: Adapters that can carry commands, so a device of theirs can be a valve, siren or power cut.
_ACTUATOR_ADAPTERS = frozenset({"native", "zigbee2mqtt", "shelly", "tasmota"})

_TOPIC_NAME = re.compile(r"(?P<topic>[^#+/\s](?:[^#+]*[^#+/\s])?)(?:#(?P<channel>\d{1,2}))?")


def _line_settings(d: DeviceConfig) -> tuple[int, str]:
    """A Modbus meter's baud rate and parity, with Eastron's defaults (9600, none)."""
    return (d.baudrate or 9600, d.parity or "N")


class DeviceKeyError(ValueError):
    """A device key the adapter cannot use (reported at that key's line)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class DeviceNameError(DeviceKeyError):
    """A device `name` the adapter cannot use."""

    def __init__(self, message: str) -> None:
        super().__init__("name", message)


class DeviceError(ValueError):
    def __init__(self, index: int, key: str, message: str) -> None:
        super().__init__(message)
        self.loc = ("devices", index, key)
