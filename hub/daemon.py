"""The composition root of `homeguard-hub run`: builds every service and runs them in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.mqtt.adapter import BusSink
from drivers.mqtt.service import MqttService
from drivers.simulator import SIMULATED_DEVICES, Scenario, run_simulator
from hub import __version__, sdnotify, wiring
from hub.backoff import Backoff
from hub.bad_input import BadInputLog
from hub.broker_locate import locate_broker
from hub.bus import Bus
from hub.clock import Clock, SystemClock
from hub.config import Config, DeviceConfig
from hub.contained import ServiceFaults, Start, contained
from hub.errors import StoreError
from hub.health import HealthReporter
from hub.incident import Incident
from hub.incident_service import IncidentService
from hub.live_view import LiveView
from hub.recorder import Recorder
from hub.store import DbWorker
from hub.store import incidents as incident_repo
from hub.store import readings as readings_repo
from rules.anomaly import AnomalyRule
from rules.device_health import DeviceHealthRule

if TYPE_CHECKING:
    from sync.service import SyncService

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Options:
    simulate: Scenario | None = None
    leak_after_s: float = 20.0
    live: bool = False
    #: Feed BLE from this recording instead of the Bluetooth adapter (`run --ble-replay`).
    ble_replay: Path | None = None


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
GIL_SWITCH_INTERVAL_S = 0.0001


async def _run(config: Config, options: Options, clock: Clock) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    config = config.model_copy(update={"mqtt": await locate_broker(config.mqtt)})
    bus = Bus()
    bad_input = BadInputLog()
    devices = config.devices
    async with DbWorker(config.hub.data_dir, open_later=True) as db:
        sink = BusSink(bus, bad_input)
        # `mqtt` is bound below: discovery subscribes through it once it is connected.
        adapters = wiring.mqtt_adapters(config, sink, lambda f: mqtt.subscribe_later(f))  # noqa: PLW0108
        mqtt = MqttService(
            config=config.mqtt,
            hub_id=config.hub.id,
            adapters=adapters,
            sink=sink,
            bus=bus,
            clock=clock,
            retained_snapshot=_snapshot(db),
        )
        leak = wiring.water_leak_protocol(config, bus, clock)
        incidents = IncidentService(bus=bus, db=db, hub_id=config.hub.id)
        liveness = wiring.liveness_service(config, bus, db, clock)
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

        optional = _optional(config, options, clock, bus, bad_input)

        def probe() -> dict[str, Any]:
            return {
                **{name: status() for name, status in optional.status.items()},
                "hub_id": config.hub.id,
                "mqtt": {
                    "connected": mqtt.connected,
                    "broker": f"{config.mqtt.host}:{config.mqtt.port}",
                    "messages": mqtt.messages,
                },
                "bad_input": bad_input.as_dict(),
                "bus": bus.stats(),
                "store": {
                    "open_error": db.open_error,
                    "incident_write_failures": incidents.write_failures,
                    "incident_last_error": incidents.last_error,
                    "recorder_last_error": recorder.last_error,
                    "readings_written": recorder.written,
                },
                "cloud": "not configured" if sync is None else sync.status(),
                **optional.faults.as_status(),
            }

        health = HealthReporter(db=db, clock=clock, probe=probe)
        async with asyncio.TaskGroup() as tg:
            # The first job of the store (behind its open, which nothing here waits for).
            tg.create_task(_register_devices(db, devices), name="register-devices")
            tg.create_task(leak.run(), name="water-leak")
            tg.create_task(incidents.run(), name="incidents")
            tg.create_task(liveness.run(), name="liveness")
            tg.create_task(device_health.run(), name="device-health")
            tg.create_task(recorder.run(), name="recorder")
            tg.create_task(mqtt.run(), name="mqtt")
            tg.create_task(health.run(), name="health")
            if sync is not None:
                tg.create_task(contained("sync", sync.run, optional.faults), name="sync")
            for name, start in optional.jobs.items():
                restart = name not in optional.once
                tg.create_task(contained(name, start, optional.faults, restart=restart), name=name)
            sdnotify.notify("READY=1")
            await mqtt.ready.wait()
            gc.collect()
            gc.freeze()  # start-up objects live forever: keep them out of every later collection
            _log.info("hub %s ready (%d configured devices)", config.hub.id, len(devices))


@dataclass
class _Optional:
    """The services that run only when the configuration or the command line asks for them."""

    jobs: dict[str, Start] = field(default_factory=dict)
    #: Jobs not started again after an unexpected error: a BLE recording would replay from its
    #: start, the simulator would be a new house.
    once: set[str] = field(default_factory=set)
    status: dict[str, Callable[[], object]] = field(default_factory=dict)
    faults: ServiceFaults = field(default_factory=ServiceFaults)


def _optional(
    config: Config, options: Options, clock: Clock, bus: Bus, bad_input: BadInputLog
) -> _Optional:
    out = _Optional()
    jobs = out.jobs
    if options.live or options.simulate is not None:
        jobs["live-view"] = LiveView(bus).run
    if config.anomaly.enabled:
        anomaly = wiring.anomaly_service(config, bus, clock)
        jobs["anomaly"] = anomaly.run
        locations = {d.id: d.location for d in config.devices}
        jobs["anomaly-rule"] = AnomalyRule(bus=bus, locations=locations).run
        out.status["anomaly"] = lambda: {
            "problem": anomaly.problem,
            "streams": anomaly.streams,
            "scored": anomaly.scored,
            "restored": anomaly.restored,
            "state_note": anomaly.state_note,
            "water_system": anomaly.water_status(),
        }
    if wiring.wants_serial(config):
        serial = wiring.serial_service(config, clock, bus, bad_input)
        jobs["serial"] = serial.run
        out.status["serial"] = serial.status
    if wiring.wants_ble(config, options.ble_replay):
        ble = wiring.ble_service(config, options.ble_replay, clock, bus, bad_input)
        jobs["ble"] = ble.run
        if options.ble_replay is not None:
            out.once.add("ble")
        out.status["ble"] = ble.status
    if config.zeroconf.announce:
        from hub.zeroconf_mdns import HubAnnouncer

        jobs["zeroconf"] = HubAnnouncer(config.hub.id, __version__).run
    if options.simulate is not None:
        out.once.add("simulator")  # started again, it would be a new house: the valve open again
        jobs["simulator"] = functools.partial(
            run_simulator,
            host=config.mqtt.broker_host,
            port=config.mqtt.port,
            scenario=options.simulate,
            base_topic=config.zigbee2mqtt.base_topic,
            leak_after_s=options.leak_after_s,
        )
    return out


def _on_signal(loop: asyncio.AbstractEventLoop, sig: int, handler: Callable[[], None]) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(sig, handler)


def _snapshot(db: DbWorker) -> Callable[[], Awaitable[list[Incident]]]:
    async def snapshot() -> list[Incident]:
        try:
            return await db.run(incident_repo.list_incidents)
        except StoreError as err:  # they are published again as they change
            _log.warning("cannot read the incidents to publish them again (%s)", err)
            return []

    return snapshot


async def _register_devices(db: DbWorker, devices: list[DeviceConfig]) -> None:
    """The configured devices in the store, once it can take them (retried with a backoff)."""
    backoff = Backoff(initial=1.0, cap=300.0)
    while True:
        try:
            await db.run(readings_repo.register_devices, [_row(d) for d in devices])
            await db.run(readings_repo.forget_unconfigured, {d.id for d in devices})
        except StoreError as err:
            _log.debug("cannot register the configured devices now (%s)", err)
            await asyncio.sleep(backoff.next_delay())
        else:
            return


def _row(d: DeviceConfig) -> readings_repo.DeviceRow:
    return readings_repo.DeviceRow(
        d.id, d.adapter, d.native_name, d.location, d.role, None, "config"
    )


__all__ = ["Options", "run", "with_simulated_devices"]
