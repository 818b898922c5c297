"""Eastron SDM meters on an RS-485 port: one pymodbus RTU client per port, its meters polled in turn.

Defaults (Eastron's factory settings): 9600 baud, 8 data bits, no parity, 1 stop bit, unit 1;
polled every 10 s. Several meters may share a port (different units): they are read one after
the other on the same client, each at its own `poll_s`.

A meter that does not answer goes offline (its `Availability`), and comes back with its next good
answer; the port stays open. A meter that answers with a Modbus exception (the wrong `model`
configured, say) has that block refused (UNSUPPORTED). When the port itself goes away the bridge
`serial:<port>` and every meter on it go offline and the port is reopened with backoff
(`PortKeeper`); pymodbus' own reconnect is turned off so there is one reconnect loop, ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from drivers.mqtt.adapter import Sink
from drivers.serial import Presence, Router
from drivers.serial.port import Parity, PortKeeper, PortLost, PortSettings, PortUnavailable
from drivers.serial.sdm import Block, Profile, decode_registers
from hub.backoff import Backoff
from hub.clock import Clock
from hub.errors import BadInputError, BadInputReason

__all__ = [
    "DEFAULT_BAUDRATE",
    "DEFAULT_POLL_S",
    "DEFAULT_UNIT",
    "Meter",
    "ModbusPort",
    "port_settings",
]

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 9600
DEFAULT_UNIT = 1
DEFAULT_POLL_S = 10.0
#: How long a meter has to answer one request; an SDM answers in tens of milliseconds.
DEFAULT_TIMEOUT_S = 1.0
#: Extra tries of a request that got no answer (RS-485 noise) before the meter counts as silent.
DEFAULT_RETRIES = 1


def port_settings(port: str, baudrate: int | None, parity: str | None) -> PortSettings:
    """8 data bits, 1 stop bit; 9600 N unless configured (Eastron meters offer 2400..38400, N/E/O)."""
    chosen = _PARITIES.get(parity or "N")
    if chosen is None:
        raise ValueError(f"parity must be N, E or O, not {parity!r}")
    return PortSettings(port, baudrate or DEFAULT_BAUDRATE, parity=chosen)


_PARITIES: dict[str, Parity] = {"N": "N", "E": "E", "O": "O"}


@dataclass(frozen=True, slots=True)
class Meter:
    device_id: str
    name: str
    unit: int
    profile: Profile
    poll_s: float = DEFAULT_POLL_S


class ModbusPort:
    """One RS-485 port and the meters on it."""

    def __init__(
        self,
        settings: PortSettings,
        meters: Sequence[Meter],
        sink: Sink,
        clock: Clock,
        backoff: Backoff,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.settings = settings
        self._meters = tuple(meters)
        self._sink = sink
        self._clock = clock
        self._timeout_s = timeout_s
        self._retries = retries
        self._presence = Presence(sink)
        self._routers = {
            m.device_id: Router(sink, m.device_id, "modbus", m.name, m.profile.model)
            for m in self._meters
        }
        self._silent: set[str] = set()  # meters whose silence was already logged
        self.keeper = PortKeeper(settings.path, sink, clock, backoff, on_lost=self._port_lost)

    async def run(self) -> NoReturn:
        """Poll the meters until cancelled, reopening the port whenever it fails."""
        await self.keeper.run(self._session)

    async def _session(self) -> None:
        s = self.settings
        if not os.path.exists(s.path):  # noqa: ASYNC240  (one stat; spares pymodbus' WARNING per retry)
            raise PortUnavailable(f"{s.path}: no such device", errno.ENOENT)
        lost = asyncio.Event()
        client = AsyncModbusSerialClient(
            s.path,
            framer=FramerType.RTU,
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=self._timeout_s,
            retries=self._retries,
            reconnect_delay=0,  # no reconnect loop of pymodbus' own: `PortKeeper` is the one
            name=f"modbus {s.path}",
            trace_connect=lambda connected: None if connected else lost.set(),
        )
        try:
            if not await client.connect():
                raise PortUnavailable(*_why_not_open(s.path))
            self.keeper.opened()
            _log.info("Modbus port %s open (%d meters)", s.describe(), len(self._meters))
            await self._poll_forever(client, lost)
        finally:
            client.close()

    async def _poll_forever(self, client: AsyncModbusSerialClient, lost: asyncio.Event) -> None:
        # Polls are timed on the event loop's clock, which its waits use; `Clock` stamps readings.
        loop = asyncio.get_running_loop()
        due = dict.fromkeys((m.device_id for m in self._meters), loop.time())
        while True:
            for meter in self._meters:
                if due[meter.device_id] <= loop.time():
                    await self._poll(client, meter)
                    now = loop.time()
                    following = due[meter.device_id] + meter.poll_s
                    due[meter.device_id] = following if following > now else now + meter.poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(due.values())):
                    await lost.wait()  # the port went away while idle: say so now
            if lost.is_set() or not client.connected:
                raise PortLost(f"{self.settings.path}: the port went away")

    async def _poll(self, client: AsyncModbusSerialClient, meter: Meter) -> None:
        registers: dict[int, int] = {}
        answered = False
        for block in meter.profile.blocks:
            result = await self._read(client, meter, block)
            if result is None:
                break  # silent: the next blocks would only wait for their timeouts too
            answered = True
            registers.update(result)
        at = self._clock.now()
        if not answered:
            self._silent_meter(meter, at)
            return
        if meter.device_id in self._silent:
            self._silent.discard(meter.device_id)
            _log.info("meter %s (unit %d) answers again", meter.device_id, meter.unit)
        self._presence.set(meter.device_id, True, at)
        self._routers[meter.device_id].emit(decode_registers(meter.profile, registers), at)

    async def _read(
        self, client: AsyncModbusSerialClient, meter: Meter, block: Block
    ) -> dict[int, int] | None:
        """The block's registers; `{}` when the meter answered without them; `None` if silent."""
        if not client.connected:
            raise PortLost(f"{self.settings.path}: the port went away")
        where = f"unit {meter.unit} registers 0x{block.address:04X}+{block.count}"
        try:
            response = await client.read_input_registers(
                block.address, count=block.count, device_id=meter.unit
            )
        except ConnectionException as err:
            raise PortLost(f"{self.settings.path}: {err}") from err
        except ModbusIOException:
            if not client.connected:
                raise PortLost(f"{self.settings.path}: the port went away") from None
            return None
        except ModbusException as err:  # a garbled or mismatched frame
            self._refuse(meter, BadInputReason.BAD_FRAME, f"{where}: {err}")
            return {}
        if response.isError():
            code = getattr(response, "exception_code", "?")
            self._refuse(meter, BadInputReason.UNSUPPORTED, f"{where}: Modbus exception {code}")
            return {}
        values = list(response.registers)
        if len(values) != block.count:
            self._refuse(meter, BadInputReason.BAD_FRAME, f"{where}: {len(values)} registers came")
            return {}
        return dict(zip(range(block.address, block.address + block.count), values, strict=True))

    def _refuse(self, meter: Meter, reason: BadInputReason, detail: str) -> None:
        self._sink.refuse(f"modbus {meter.device_id}", BadInputError(reason, detail))

    def _silent_meter(self, meter: Meter, at: float) -> None:
        if meter.device_id not in self._silent:
            self._silent.add(meter.device_id)
            _log.warning(
                "meter %s (unit %d on %s) does not answer; it is offline until it does",
                meter.device_id,
                meter.unit,
                self.settings.path,
            )
        self._presence.set(meter.device_id, False, at)

    def _port_lost(self, at: float) -> None:
        for meter in self._meters:
            self._presence.set(meter.device_id, False, at)


def _why_not_open(path: str) -> tuple[str, int | None]:
    """Why pymodbus could not open `path` (its own log, silenced, would say only that it could
    not connect): the OS's word, from opening it once more ourselves (no permission for the hub
    user, not in `dialout`; busy; not a serial device)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
    except OSError as err:
        return f"cannot open {path}: {err.strerror}", err.errno
    return f"cannot open {path} as a serial port", None
