"""Configuration: one TOML file, validated by pydantic, with errors that name file, line and key.

Every key has a default, so the hub runs with no file at all. `HOMEGUARD_CONFIG` names the file;
otherwise `/etc/homeguard/hub.toml` is read when it exists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from hub.config_devices import (
    BLE_ADAPTERS,
    MODBUS_MODELS,
    SERIAL_ADAPTERS,
    Adapter,
    DeviceConfig,
    DeviceError,
    DeviceKeyError,
    Role,
    Section,
    check_devices,
)
from hub.config_locate import locate_key
from hub.errors import ConfigError
from hub.measurements import Measurement

# The device table lives in `hub.config_devices`; its public names are re-exported here.
__all__ = [
    "ANOMALY_STATE_FILE",
    "BLE_ADAPTERS",
    "DEFAULT_CONFIG_PATH",
    "HUB_ID_PATTERN",
    "LOCAL_BROKER",
    "MODBUS_MODELS",
    "SERIAL_ADAPTERS",
    "WATER_CALIBRATION_FILE",
    "Adapter",
    "AnomalySection",
    "BleSection",
    "CloudSection",
    "Config",
    "DeviceConfig",
    "HubSection",
    "LeakSection",
    "LivenessSection",
    "MqttSection",
    "Role",
    "StoreSection",
    "TlsSection",
    "WaterSystemSection",
    "ZeroconfSection",
    "Zigbee2MqttSection",
    "config_path",
    "default_data_dir",
    "default_hub_id",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/homeguard/hub.toml")
HUB_ID_PATTERN = r"^[A-Za-z0-9_-]{3,64}$"


def default_hub_id() -> str:
    """A stable id derived from the machine id, so a hub keeps it across reinstalls."""
    for candidate in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            seed = candidate.read_text().strip()
        except OSError:
            continue
        if seed:
            return "hub-" + hashlib.sha256(seed.encode()).hexdigest()[:8]
    return "hub-" + hashlib.sha256(os.uname().nodename.encode()).hexdigest()[:8]


#: Where the water system model keeps its calibration, in the data dir (`models.water_service`).
WATER_CALIBRATION_FILE = "water_system.calibration.json"
#: Where the anomaly service keeps its streams' state, in the data dir (`models.state_file`).
ANOMALY_STATE_FILE = "anomaly_streams.json"


def recalibrate_marker(calibration_file: Path) -> Path:
    """The file `models recalibrate` leaves beside the calibration file: the hub, finding it,
    calibrates afresh (and removes it). Only the command writes it."""
    return calibration_file.with_name(calibration_file.name + ".recalibrate")


def default_data_dir() -> Path:
    """systemd's StateDirectory, else /var/lib/homeguard for root, else the user's state dir."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/homeguard")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "homeguard"


def _check_secret_file(path: Path | None) -> Path | None:
    """A file holding a secret must exist, be a file and not be readable by others."""
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from err
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a file")
    if mode & stat.S_IROTH:
        raise ValueError(f"{path} is readable by everyone; run: chmod o-rwx {path}")
    return _check_readable_file(path)


def _check_readable_file(path: Path | None) -> Path | None:
    """A file the hub reads at run time (a CA, a certificate) must be readable now: a typo found
    at run time is an MQTT link retried forever with no word of which key is wrong."""
    if path is None:
        return None
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from err
    return path


def _check_ca_file(path: Path | None) -> Path | None:
    """A CA file must hold certificates TLS can use (a wrong file failed only at connect time)."""
    if _check_readable_file(path) is None:
        return None
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as err:
        raise ValueError(f"{path} holds no certificate TLS can use ({err.reason})") from None
    return path


def _check_data_dir(path: Path) -> Path:
    """The data dir must be a directory, or be creatable as one (not judged where this user may
    not look: `check-config` run by someone other than the hub's user)."""
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except PermissionError:
        return path
    if not existing.is_dir():
        what = "is not a directory" if existing == path else f"cannot be made: {existing} is a file"
        raise ValueError(f"{path} {what}")
    return path


class HubSection(Section):
    id: Annotated[str, Field(pattern=HUB_ID_PATTERN)] = Field(default_factory=default_hub_id)
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _data_dir = field_validator("data_dir")(_check_data_dir)


class TlsSection(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    _key = field_validator("key_file")(_check_secret_file)
    _ca = field_validator("ca_file")(_check_ca_file)
    _cert = field_validator("cert_file")(_check_readable_file)

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


LOCAL_BROKER = "127.0.0.1"


class MqttSection(Section):
    #: Unset: a broker on this machine if one listens on `port`, else one announced on the LAN
    #: as `_mqtt._tcp` (zeroconf), else this machine again (retried until it answers).
    host: Annotated[str, Field(min_length=1)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    discovery_timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    username: str | None = None
    password_file: Path | None = None
    client_id: str | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    tls: TlsSection | None = None
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024

    _password = field_validator("password_file")(_check_secret_file)

    @model_validator(mode="after")
    def _tls_host(self) -> MqttSection:
        if self.tls is not None and self.host is None:
            raise ValueError(
                "[mqtt.tls] needs an explicit `host` (the name its certificate is for)"
            )
        return self

    @property
    def broker_host(self) -> str:
        """The host to connect to when nothing was discovered."""
        return self.host if self.host is not None else LOCAL_BROKER

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text().strip()


class Zigbee2MqttSection(Section):
    base_topic: Annotated[str, Field(pattern=r"^[^#+]+$")] = "zigbee2mqtt"


class CloudSection(Section):
    url: str
    secret_file: Path
    heartbeat_s: Annotated[int, Field(ge=10, le=3600)] = 60
    ca_file: Path | None = None
    #: Pending outbox rows past which telemetry is dropped, oldest first (incidents never are).
    outbox_budget_rows: Annotated[int, Field(ge=1000, le=10_000_000)] = 100_000

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/")
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return value.rstrip("/")
        raise ValueError("expected an https:// URL (plain http:// only to a loopback host)")

    _secret = field_validator("secret_file")(_check_secret_file)
    _ca = field_validator("ca_file")(_check_ca_file)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LeakSection(Section):
    """Tuning of the water-leak protocol."""

    confirm_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2


class BleSection(Section):
    """Bluetooth LE scanning, used when a `bthome` or `xiaomi` device is configured."""

    adapter: Annotated[str, Field(pattern=r"^hci\d{1,2}$")] = "hci0"
    #: Passive scanning (BlueZ advertisement monitor): no scan requests on the air. Falls back to
    #: active scanning, once and said so, where the adapter or BlueZ cannot do passive.
    passive: bool = True


class ZeroconfSection(Section):
    #: Announce the hub on the LAN as `_homeguard._tcp` (its id and version).
    announce: bool = True


class LivenessSection(Section):
    """Learned liveness: when a device counts as silent, and when a battery counts as low."""

    #: Silent after this many learned report intervals (clamped per device kind).
    multiple: Annotated[float, Field(ge=1.5, le=20)] = 3.0
    battery_low_pct: Annotated[float, Field(ge=1, le=50)] = 15.0
    check_interval_s: Annotated[float, Field(ge=1, le=600)] = 30.0


class WaterSystemSection(Section):
    """The devices of one pump loop, for the multivariate water-system model (device ids).

    Each key is a column of the model; its measurement is implied (current, pressure,
    temperature, voltage, flow). Leave out what the loop has no sensor for. The loop's first
    `calibrate_hours`, and at least `calibrate_rows` rows (one every `row_interval_s` at most),
    are taken as its normal operation: long enough to hold its warm-up and its daily rhythm.
    """

    current: str | None = None  # the pump motor's current, A
    pressure: str | None = None  # the loop's pressure, bar
    motor_temperature: str | None = None
    fluid_temperature: str | None = None
    voltage: str | None = None  # the pump motor's supply voltage, V
    flow: str | None = None  # the loop's flow, L/min
    row_interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    calibrate_rows: Annotated[int, Field(ge=50, le=1_000_000)] = 400
    calibrate_hours: Annotated[float, Field(ge=0, le=24 * 31)] = 24.0


class AnomalySection(Section):
    """Local anomaly detection: ONNX models on every numeric stream, offline."""

    enabled: bool = True
    #: Streams scored at once (the least recently seen is forgotten beyond this).
    max_streams: Annotated[int, Field(ge=1, le=10_000)] = 500
    #: Left out of anomaly detection: a device id (all its streams) or `device_id/measurement`.
    ignore: list[str] = Field(default_factory=list)
    water_system: WaterSystemSection | None = None

    @field_validator("ignore")
    @classmethod
    def _ignore(cls, value: list[str]) -> list[str]:
        known = {m.value for m in Measurement}
        for entry in value:
            device, _, measurement = entry.partition("/")
            if not device:
                raise ValueError(f"{entry!r}: expected a device id, or device_id/measurement")
            if measurement and measurement not in known:
                raise ValueError(
                    f"{entry!r}: no measurement {measurement!r} (one of {', '.join(sorted(known))})"
                )
        return value


class StoreSection(Section):
    readings_retention_days: Annotated[float, Field(gt=0, le=3650)] = 7.0
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class Config(Section):
    hub: HubSection = Field(default_factory=HubSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    zigbee2mqtt: Zigbee2MqttSection = Field(default_factory=Zigbee2MqttSection)
    cloud: CloudSection | None = None
    leak: LeakSection = Field(default_factory=LeakSection)
    liveness: LivenessSection = Field(default_factory=LivenessSection)
    anomaly: AnomalySection = Field(default_factory=AnomalySection)
    zeroconf: ZeroconfSection = Field(default_factory=ZeroconfSection)
    ble: BleSection = Field(default_factory=BleSection)
    store: StoreSection = Field(default_factory=StoreSection)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _devices(self) -> Config:
        check_devices(self.devices)
        return self

    def device(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.id == device_id), None)


def config_path() -> Path | None:
    """The file to read: `HOMEGUARD_CONFIG`, else the default path when it exists, else none."""
    if env := os.environ.get("HOMEGUARD_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(path: Path | None) -> Config:
    """Read and validate `path` (None: built-in defaults). Raises `ConfigError`."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text: {err}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    config = parse_config(data, text=text, origin=str(path))
    _check_inline_secrets(config, path, text)
    return config


def _check_inline_secrets(config: Config, path: Path, text: str) -> None:
    """A configuration that holds a secret itself (a BLE bind key) must not be readable by all."""
    holders = [i for i, d in enumerate(config.devices) if d.bind_key is not None]
    if not holders or not path.stat().st_mode & stat.S_IROTH:
        return
    loc = ("devices", holders[0], "bind_key")
    line = locate_key(text, loc)
    raise ConfigError(
        f"{path}:{line}: {_dotted(loc)}: this file holds a bind key and is readable by everyone; "
        f"run: chmod o-rwx {path}"
    )


def parse_config(data: dict[str, Any], *, text: str = "", origin: str = "<config>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, text, origin)) from err


def _describe(err: ValidationError, text: str, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc: tuple[Any, ...] = tuple(e["loc"])
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, DeviceError):
            loc = ctx_err.loc
        elif isinstance(ctx_err, DeviceKeyError):
            loc = (*loc, ctx_err.key)
        key = _dotted(loc)
        line = locate_key(text, loc)
        where = f"{origin}:{line}" if line else origin
        message = str(ctx_err) if ctx_err is not None else e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif e["type"] == "missing":
            message = "required key is missing"
        value = e.get("input")
        if isinstance(ctx_err, DeviceKeyError) and isinstance(value, dict):
            value = value.get(ctx_err.key)
        quiet = (
            e["type"] in {"missing", "extra_forbidden"}
            or isinstance(value, dict)
            or loc[-1] in SECRET_KEYS  # a key with one typo must not reach the journal
        )
        got = "" if quiet else f" (got {value!r})"
        lines.append(f"{where}: {key}: {message}{got}")
    return "\n".join(lines)


#: Keys whose values are secrets: never echoed in an error nor shown by `check-config --json`.
SECRET_KEYS = frozenset({"bind_key"})


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
