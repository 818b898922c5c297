"""Builds the feature services from the configuration, for the composition root (`hub.daemon`).

Each builder knows which drivers a configuration needs and how they are told apart; the heavy ones
(BLE pulls in bleak, serial pulls in pymodbus, the models pull in onnxruntime) are imported only
when a configured device or section asks for them, so a hub pays in memory only for what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.mqtt.adapter import Adapter, BusSink, Sink
from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.rtl433 import Rtl433Adapter
from drivers.mqtt.service import BROKER_BRIDGE_ID
from drivers.mqtt.shelly import ShellyAdapter
from drivers.mqtt.tasmota import TasmotaAdapter
from drivers.mqtt.zigbee2mqtt import BRIDGE_DEVICE_ID, Zigbee2MqttAdapter
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.clock import Clock
from hub.config import (
    ANOMALY_STATE_FILE,
    BLE_ADAPTERS,
    SERIAL_ADAPTERS,
    WATER_CALIBRATION_FILE,
    Config,
    DeviceConfig,
)
from hub.events import DeviceDiscovered
from hub.liveness import DeviceProfile, LivenessTracker
from hub.liveness_service import LivenessService
from hub.measurements import Measurement
from hub.store import DbWorker
from rules.water_leak import Place, WaterLeakProtocol

if TYPE_CHECKING:
    from drivers.ble import BleService
    from drivers.serial.service import SerialService
    from models.service import AnomalyService

#: rtl_433 says nothing about itself: it is down when all of its devices are silent.
RTL_433_BRIDGE_ID = "rtl_433"
_MAINS_ADAPTERS = frozenset({"shelly", "tasmota", "modbus", "dsmr", "json_lines"})
#: What a discovered device announces that makes its silence a safety problem.
_HAZARDS = frozenset({Measurement.WATER_LEAK.value, Measurement.SMOKE.value})


def mqtt_adapters(config: Config, sink: Sink, subscribe: Callable[[str], None]) -> list[Adapter]:
    """Every MQTT adapter; `subscribe` adds a topic filter on the live connection (discovery)."""
    devices, max_payload = config.devices, config.mqtt.max_payload_bytes
    native: list[Adapter] = [
        NativeAdapter(devices, sink, max_payload),
        Zigbee2MqttAdapter(devices, sink, max_payload, config.zigbee2mqtt.base_topic),
        ShellyAdapter(devices, sink, max_payload, src=f"homeguard-{config.hub.id}"),
        TasmotaAdapter(devices, sink, max_payload),
        Rtl433Adapter(devices, sink, max_payload),
    ]
    # Last: a topic goes to the first adapter that owns it, and discovery only learns what no
    # other adapter claims (Zigbee2MQTT and Tasmota announce their devices this way too).
    discovery = HomeAssistantAdapter(
        devices,
        sink,
        max_payload,
        subscribe=subscribe,
        claimed=lambda topic: any(a.owns(topic) for a in native),
    )
    return [*native, discovery]


def water_leak_protocol(config: Config, bus: Bus, clock: Clock) -> WaterLeakProtocol:
    places = {d.id: Place(d.id, d.native_name, d.location) for d in config.devices}
    return WaterLeakProtocol(
        bus=bus,
        clock=clock,
        valves=[places[d.id] for d in config.devices if d.role == "water_valve"],
        sirens=[places[d.id] for d in config.devices if d.role == "siren"],
        places=places,
        power_cuts=[places[d.id] for d in config.devices if d.role == "power_cut"],
        confirm_timeout_s=config.leak.confirm_timeout_s,
        retries=config.leak.retries,
    )


def liveness_service(config: Config, bus: Bus, db: DbWorker, clock: Clock) -> LivenessService:
    ble_adapter = config.ble.adapter
    return LivenessService(
        bus=bus,
        db=db,
        clock=clock,
        tracker=LivenessTracker(
            {d.id: _liveness_profile(d, ble_adapter) for d in config.devices},
            start=clock.monotonic(),
            multiple=config.liveness.multiple,
            battery_low_pct=config.liveness.battery_low_pct,
            inferred_bridges=_inferred_bridges(config),
        ),
        discovered_profile=lambda event: _discovered_profile(config, event),
        interval_s=config.liveness.check_interval_s,
    )


def _inferred_bridges(config: Config) -> frozenset[str]:
    """Bridges that may fail without saying so: rtl_433 (no last will), and the Bluetooth adapter
    (bluetoothd can die mid-scan without bleak noticing): down when all their devices are silent."""
    inferred = {RTL_433_BRIDGE_ID}
    if any(d.adapter in BLE_ADAPTERS for d in config.devices):
        inferred.update(_bridges("bthome", config.ble.adapter))
    return frozenset(inferred)


def _bridges(adapter: str, ble_adapter: str, port: str | None = None) -> tuple[str, ...]:
    """What a device of `adapter` is heard through, outermost first (see `hub.liveness`)."""
    if adapter in BLE_ADAPTERS:
        from drivers.ble import bridge_id  # only where BLE runs: it imports bleak

        return (bridge_id(ble_adapter),)
    if adapter in SERIAL_ADAPTERS:
        from drivers.serial import bridge_id as serial_bridge

        return (serial_bridge(port),) if port is not None else ()
    if adapter == "zigbee2mqtt":
        return (BROKER_BRIDGE_ID, BRIDGE_DEVICE_ID)
    if adapter == "rtl_433":
        return (BROKER_BRIDGE_ID, RTL_433_BRIDGE_ID)
    return (BROKER_BRIDGE_ID,)


def _discovered_profile(config: Config, event: DeviceDiscovered) -> DeviceProfile | None:
    """A discovered device: a serial meter's phase (`<id>-l1`) is heard through its meter's port;
    a BLE sensor in range that is not configured is not read at all, so not watched either. One
    announced with a leak or smoke sensor (Zigbee2MQTT's exposes) is critical from the start: a
    newly paired leak sensor that dies before its first report is still a safety problem."""
    if event.adapter in BLE_ADAPTERS:
        return None
    port = next(
        (d.port for d in config.devices if d.port and event.device_id.startswith(f"{d.id}-l")),
        None,
    )
    return DeviceProfile(
        bridges=_bridges(event.adapter, config.ble.adapter, port),
        mains=event.adapter in _MAINS_ADAPTERS,
        critical=not _HAZARDS.isdisjoint(event.exposes),
    )


def _liveness_profile(device: DeviceConfig, ble_adapter: str) -> DeviceProfile:
    return DeviceProfile(
        bridges=_bridges(device.adapter, ble_adapter, device.port),
        mains=device.adapter in _MAINS_ADAPTERS,
        critical=device.role is not None,
    )


def serial_service(config: Config, clock: Clock, bus: Bus, bad_input: BadInputLog) -> SerialService:
    """Modbus meters, DSMR P1 meters and JSON-lines boards, one task per serial port."""
    from drivers.serial.service import SerialService

    return SerialService(config.devices, BusSink(bus, bad_input, source="serial"), clock)


def wants_serial(config: Config) -> bool:
    return any(d.adapter in SERIAL_ADAPTERS for d in config.devices)


def anomaly_service(config: Config, bus: Bus, clock: Clock) -> AnomalyService:
    """The ONNX models (numpy and onnxruntime are imported here, only when enabled)."""
    from hub.measurements import Measurement
    from models.service import AnomalyService
    from models.water_service import WaterSystemConfig

    water = config.anomaly.water_system
    water_config = None
    if water is not None:
        m = Measurement
        feeds = (
            (water.current, m.CURRENT),
            (water.pressure, m.PRESSURE),
            (water.motor_temperature, m.TEMPERATURE),
            (water.fluid_temperature, m.TEMPERATURE),
            (water.voltage, m.VOLTAGE),
            (water.flow, m.FLOW),
        )
        # The two vibration columns stay empty: the vocabulary's vibration is a yes/no, not an RMS.
        columns = (None, None, *((d, meas) if d is not None else None for d, meas in feeds))
        water_config = WaterSystemConfig(
            columns=columns,
            row_interval_s=water.row_interval_s,
            calibrate_rows=water.calibrate_rows,
            calibrate_s=water.calibrate_hours * 3600.0,
            calibration_file=config.hub.data_dir / WATER_CALIBRATION_FILE,
        )
    return AnomalyService(
        bus=bus,
        clock=clock,
        max_streams=config.anomaly.max_streams,
        water=water_config,
        state_file=config.hub.data_dir / ANOMALY_STATE_FILE,
        ignore=frozenset(config.anomaly.ignore),
    )


def wants_ble(config: Config, replay: Path | None) -> bool:
    return replay is not None or any(d.adapter in BLE_ADAPTERS for d in config.devices)


def ble_service(
    config: Config, replay: Path | None, clock: Clock, bus: Bus, bad_input: BadInputLog
) -> BleService:
    """The Bluetooth adapter's adverts, or those of a recording (`run --ble-replay FILE`)."""
    from drivers.ble import BleakSource, BleService, ReplaySource

    source = (
        ReplaySource(replay, adapter=config.ble.adapter)
        if replay is not None
        else BleakSource(clock, adapter=config.ble.adapter, passive=config.ble.passive)
    )
    return BleService(config.devices, BusSink(bus, bad_input, source="ble"), clock, source)
