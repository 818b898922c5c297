"""The serial service: every configured serial device, one task per port, each reopening its own.

    service = SerialService(config.devices, BusSink(bus, bad_input, source="serial"), clock)
    tg.create_task(service.run(), name="serial")

It picks the `modbus`, `dsmr` and `json_lines` devices; the others are not its business. One port
carries one protocol: Modbus meters may share a port (distinct `unit`s, the same `baudrate` and
`parity`), a DSMR meter or a JSON-lines sensor has its port to itself. A configuration that breaks
this is refused at construction (`ConfigError`); a port that is missing at start is not an error:
it is logged once and opened when it appears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from drivers.mqtt.adapter import Sink
from drivers.serial import dsmr, json_lines, modbus
from drivers.serial.port import PortKeeper, run_stream
from drivers.serial.sdm import PROFILES
from hub.backoff import Backoff
from hub.clock import Clock
from hub.config import SERIAL_ADAPTERS, DeviceConfig
from hub.errors import ConfigError

__all__ = ["SerialService"]

_log = logging.getLogger(__name__)

_Job = Callable[[], Coroutine[Any, Any, object]]


class SerialService:
    def __init__(
        self,
        devices: Sequence[DeviceConfig],
        sink: Sink,
        clock: Clock,
        *,
        reopen_initial_s: float = 1.0,
        reopen_cap_s: float = 30.0,
        modbus_timeout_s: float = modbus.DEFAULT_TIMEOUT_S,
        dsmr_silent_after_s: float = dsmr.SILENT_AFTER_S,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._reopen = (reopen_initial_s, reopen_cap_s)
        self._modbus_timeout_s = modbus_timeout_s
        self._dsmr_silent_after_s = dsmr_silent_after_s
        by_port: dict[str, list[DeviceConfig]] = {}
        for d in devices:
            if d.adapter in SERIAL_ADAPTERS and d.port is not None:
                by_port.setdefault(d.port, []).append(d)
        self._keepers: dict[str, PortKeeper] = {}
        self._jobs: dict[str, _Job] = {
            port: self._job(port, on_port) for port, on_port in by_port.items()
        }

    @property
    def ports(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def status(self) -> dict[str, bool]:
        """Each port and whether it is open now (for the health probe)."""
        return {port: keeper.is_open for port, keeper in self._keepers.items()}

    async def run(self) -> None:
        """Run every port until cancelled (returns at once when no serial device is configured)."""
        if not self._jobs:
            return
        _log.info("serial: %d ports (%s)", len(self._jobs), ", ".join(self._jobs))
        async with asyncio.TaskGroup() as tg:
            for port, job in self._jobs.items():
                tg.create_task(job(), name=f"serial {port}")

    def _new_backoff(self) -> Backoff:
        initial, cap = self._reopen
        return Backoff(initial=initial, cap=cap)

    def _job(self, port: str, devices: list[DeviceConfig]) -> _Job:
        adapters = {d.adapter for d in devices}
        if len(adapters) > 1:
            raise ConfigError(
                f"serial port {port} is configured for {' and '.join(sorted(adapters))} devices: "
                "one port speaks one protocol"
            )
        adapter = adapters.pop()
        if adapter == "modbus":
            return self._modbus(port, devices)
        if len(devices) > 1:
            ids = ", ".join(d.id for d in devices)
            raise ConfigError(
                f"serial port {port} has {len(devices)} {adapter} devices ({ids}): one is the most"
            )
        d = devices[0]
        device: dsmr.DsmrMeter | json_lines.JsonLinesDevice
        if adapter == "dsmr":
            settings = dsmr.port_settings(port, d.baudrate)
            device = dsmr.DsmrMeter(
                d.id,
                d.native_name,
                self._sink,
                self._dsmr_silent_after_s,
                crc_required=dsmr.needs_crc(settings),
            )
        else:
            device = json_lines.JsonLinesDevice(d.id, d.native_name, self._sink)
            settings = json_lines.port_settings(port, d.baudrate)
        keeper = PortKeeper(port, self._sink, self._clock, self._new_backoff(), device.lost)
        self._keepers[port] = keeper
        return lambda: run_stream(settings, device, keeper, self._clock)

    def _modbus(self, port: str, devices: list[DeviceConfig]) -> _Job:
        line = {(d.baudrate or modbus.DEFAULT_BAUDRATE, d.parity or "N") for d in devices}
        if len(line) > 1:
            raise ConfigError(
                f"the Modbus meters on {port} disagree on baudrate/parity ({sorted(line)}): "
                "meters sharing a port must use the same settings"
            )
        meters = [
            modbus.Meter(
                device_id=d.id,
                name=d.native_name,
                unit=d.unit or modbus.DEFAULT_UNIT,
                profile=PROFILES[d.model or ""],
                poll_s=d.poll_s or modbus.DEFAULT_POLL_S,
            )
            for d in devices
        ]
        units = [m.unit for m in meters]
        if len(set(units)) != len(units):
            raise ConfigError(f"two Modbus meters on {port} use the same unit: {sorted(units)}")
        settings = modbus.port_settings(port, devices[0].baudrate, devices[0].parity)
        bus = modbus.ModbusPort(
            settings,
            meters,
            self._sink,
            self._clock,
            self._new_backoff(),
            timeout_s=self._modbus_timeout_s,
        )
        self._keepers[port] = bus.keeper
        return bus.run
