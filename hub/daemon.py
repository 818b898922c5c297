"""The composition root of `homeguard-hub run`: builds every service and runs them in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.mqtt.adapter import Adapter, BusSink
from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.rtl433 import Rtl433Adapter
from drivers.mqtt.service import BROKER_BRIDGE_ID, MqttService
from drivers.mqtt.shelly import ShellyAdapter
from drivers.mqtt.tasmota import TasmotaAdapter
from drivers.mqtt.zigbee2mqtt import BRIDGE_DEVICE_ID, Zigbee2MqttAdapter
from drivers.simulator import SIMULATED_DEVICES, Scenario, run_simulator
from hub import __version__, sdnotify
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.clock import Clock, SystemClock
from hub.config import LOCAL_BROKER, Config, DeviceConfig, MqttSection
from hub.health import HealthReporter
from hub.incident import Incident
from hub.incident_service import IncidentService
from hub.live_view import LiveView
from hub.liveness import DeviceProfile, LivenessTracker
from hub.liveness_service import LivenessService
from hub.recorder import Recorder
from hub.store import DbWorker
from hub.store import incidents as incident_repo
from hub.store import readings as readings_repo
from rules.device_health import DeviceHealthRule
from rules.water_leak import Place, WaterLeakProtocol

if TYPE_CHECKING:
    from sync.service import SyncService

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Options:
    simulate: Scenario | None = None
    leak_after_s: float = 20.0
    live: bool = False


def with_simulated_devices(config: Config) -> Config:
    """The configuration plus the simulator's devices (the ones it does not already name)."""
    known = {d.id for d in config.devices}
    extra = [
        DeviceConfig(id=d.id, adapter=d.adapter, name=d.name, location=d.location, role=d.role)  # type: ignore[arg-type]  # simulator roles/adapters are a subset of the config's
        for d in SIMULATED_DEVICES
        if d.id not in known
    ]
    return config.model_copy(update={"devices": [*config.devices, *extra]})


async def run(config: Config, options: Options = Options(), clock: Clock | None = None) -> None:
    """Run the hub until cancelled (SIGTERM cancels it too)."""
    clock = clock or SystemClock()
    if options.simulate is not None:
        config = with_simulated_devices(config)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await _run(config, options, clock)
    finally:
        sdnotify.notify("STOPPING=1")


#: The GIL hand-over interval. CPython's default (5 ms) lets the database thread hold the
#: interpreter for up to 5 ms while a wet reading waits for the event loop's thread to run the
#: leak path; measured on this machine kind, the time from a wet message to its valve command on
#: the socket had p99 1.3 ms at 0.5 ms and 0.6-0.75 ms at 0.1 ms. The two threads rarely compete
#: otherwise, so the shorter slice costs no visible CPU.
_SWITCH_INTERVAL_S = 0.0001


async def _run(config: Config, options: Options, clock: Clock) -> None:
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    config = config.model_copy(update={"mqtt": await locate_broker(config.mqtt)})
    bus = Bus()
    bad_input = BadInputLog()
    devices = config.devices
    async with DbWorker(config.hub.data_dir) as db:
        await db.run(readings_repo.register_devices, [_row(d) for d in devices])
        await db.run(readings_repo.forget_unconfigured, {d.id for d in devices})

        sink = BusSink(bus, bad_input)
        max_payload = config.mqtt.max_payload_bytes
        adapters: list[Adapter] = [
            NativeAdapter(devices, sink, max_payload),
            Zigbee2MqttAdapter(devices, sink, max_payload, config.zigbee2mqtt.base_topic),
            ShellyAdapter(devices, sink, max_payload, src=f"homeguard-{config.hub.id}"),
            TasmotaAdapter(devices, sink, max_payload),
            Rtl433Adapter(devices, sink, max_payload),
        ]
        mqtt = MqttService(
            config=config.mqtt,
            hub_id=config.hub.id,
            adapters=adapters,
            sink=sink,
            bus=bus,
            clock=clock,
            retained_snapshot=_snapshot(db),
        )
        places = {d.id: Place(d.id, d.native_name, d.location) for d in devices}
        leak = WaterLeakProtocol(
            bus=bus,
            clock=clock,
            valves=[places[d.id] for d in devices if d.role == "water_valve"],
            sirens=[places[d.id] for d in devices if d.role == "siren"],
            places=places,
            confirm_timeout_s=config.leak.confirm_timeout_s,
            retries=config.leak.retries,
        )
        incidents = IncidentService(bus=bus, db=db, hub_id=config.hub.id)
        liveness = LivenessService(
            bus=bus,
            db=db,
            clock=clock,
            tracker=LivenessTracker(
                {d.id: _liveness_profile(d) for d in devices},
                start=clock.now(),
                multiple=config.liveness.multiple,
                battery_low_pct=config.liveness.battery_low_pct,
                inferred_bridges=frozenset({RTL_433_BRIDGE_ID}),
            ),
            discovered_profile=lambda adapter: DeviceProfile(bridges=_bridges(adapter, None)),
            interval_s=config.liveness.check_interval_s,
        )
        device_health = DeviceHealthRule(bus=bus, locations={d.id: d.location for d in devices})
        recorder = Recorder(
            bus=bus,
            db=db,
            clock=clock,
            flush_interval_s=config.store.flush_interval_s,
            retention_s=config.store.readings_retention_days * 86400,
        )

        loop = asyncio.get_running_loop()
        sync: SyncService | None = None
        if config.cloud is not None:
            from sync.service import SyncService  # only a hub with a [cloud] section loads httpx

            sync = SyncService(config=config, bus=bus, db=db, clock=clock)
            _on_signal(loop, signal.SIGUSR1, sync.flush)
        else:
            # `homeguard-hub sync flush` sends SIGUSR1, whose default action would stop the hub.
            _on_signal(loop, signal.SIGUSR1, lambda: _log.info("no [cloud] configured: no flush"))

        def probe() -> dict[str, Any]:
            return {
                "hub_id": config.hub.id,
                "mqtt": {
                    "connected": mqtt.connected,
                    "broker": f"{config.mqtt.host}:{config.mqtt.port}",
                    "messages": mqtt.messages,
                },
                "bad_input": bad_input.as_dict(),
                "bus": bus.stats(),
                "store": {
                    "incident_write_failures": incidents.write_failures,
                    "incident_last_error": incidents.last_error,
                    "recorder_last_error": recorder.last_error,
                    "readings_written": recorder.written,
                },
                "cloud": "not configured" if sync is None else sync.status(),
            }

        health = HealthReporter(db=db, clock=clock, probe=probe)
        async with asyncio.TaskGroup() as tg:
            if options.live or options.simulate is not None:
                tg.create_task(LiveView(bus).run(), name="live-view")
            tg.create_task(leak.run(), name="water-leak")
            tg.create_task(incidents.run(), name="incidents")
            tg.create_task(liveness.run(), name="liveness")
            tg.create_task(device_health.run(), name="device-health")
            tg.create_task(recorder.run(), name="recorder")
            tg.create_task(mqtt.run(), name="mqtt")
            tg.create_task(health.run(), name="health")
            if sync is not None:
                tg.create_task(sync.run(), name="sync")
            if config.zeroconf.announce:
                from hub.zeroconf_mdns import HubAnnouncer

                tg.create_task(HubAnnouncer(config.hub.id, __version__).run(), name="zeroconf")
            if options.simulate is not None:
                tg.create_task(
                    run_simulator(
                        host=config.mqtt.broker_host,
                        port=config.mqtt.port,
                        scenario=options.simulate,
                        base_topic=config.zigbee2mqtt.base_topic,
                        leak_after_s=options.leak_after_s,
                    ),
                    name="simulator",
                )
            sdnotify.notify("READY=1")
            await mqtt.ready.wait()
            gc.collect()
            gc.freeze()  # start-up objects live forever: keep them out of every later collection
            _log.info("hub %s ready (%d configured devices)", config.hub.id, len(devices))


#: rtl_433 says nothing about itself: it is down when all of its devices are silent.
RTL_433_BRIDGE_ID = "rtl_433"
_MAINS_ADAPTERS = frozenset({"shelly", "tasmota", "modbus", "dsmr", "json_lines"})


def _bridges(adapter: str, device: DeviceConfig | None) -> tuple[str, ...]:
    """What a device of `adapter` is heard through, outermost first (see `hub.liveness`)."""
    if adapter == "zigbee2mqtt":
        return (BROKER_BRIDGE_ID, BRIDGE_DEVICE_ID)
    if adapter == "rtl_433":
        return (BROKER_BRIDGE_ID, RTL_433_BRIDGE_ID)
    return (BROKER_BRIDGE_ID,)


def _liveness_profile(device: DeviceConfig) -> DeviceProfile:
    return DeviceProfile(
        bridges=_bridges(device.adapter, device),
        mains=device.adapter in _MAINS_ADAPTERS,
        critical=device.role is not None,
    )


async def locate_broker(mqtt: MqttSection) -> MqttSection:
    """`[mqtt] host` unset: this machine's broker if one listens, else one announced on the LAN."""
    if mqtt.host is not None:
        return mqtt
    host, port = LOCAL_BROKER, mqtt.port
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
    except (OSError, TimeoutError):
        from hub.zeroconf_mdns import find_mqtt_broker

        found = await find_mqtt_broker(mqtt.discovery_timeout_s)
        if found is None:
            _log.warning(
                "no MQTT broker on this machine and none announced on the LAN (_mqtt._tcp); "
                "retrying %s:%d",
                host,
                port,
            )
        else:
            host, port = found
            _log.info("using the MQTT broker announced on the LAN at %s:%d", host, port)
    return mqtt.model_copy(update={"host": host, "port": port})


def _on_signal(loop: asyncio.AbstractEventLoop, sig: int, handler: Callable[[], None]) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(sig, handler)


def _snapshot(db: DbWorker) -> Callable[[], Awaitable[list[Incident]]]:
    async def snapshot() -> list[Incident]:
        return await db.run(incident_repo.list_incidents)

    return snapshot


def _row(d: DeviceConfig) -> readings_repo.DeviceRow:
    return readings_repo.DeviceRow(
        d.id, d.adapter, d.native_name, d.location, d.role, None, "config"
    )


__all__ = ["Options", "run", "with_simulated_devices"]
