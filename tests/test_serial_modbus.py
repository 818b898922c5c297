"""Eastron SDM meters over Modbus RTU: a pymodbus RTU server plays the meters on one end of a pty
null modem, the service polls them from the other end.

Register addresses are from Eastron's Modbus protocol documents for the SDM120-Modbus and
SDM630-Modbus V2 (input registers, FLOAT32, high word first): 0x0000/2/4 phase voltages,
0x0006/8/A phase currents, 0x000C/E/10 phase active powers, 0x0034 total system power,
0x0046 frequency, 0x0156 total active energy. The server's registers are written with pymodbus'
`convert_to_registers`, the way a meter's firmware lays them out.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusServerContext,
    ModbusSimulatorContext,
    ModbusSparseDataBlock,
)
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from drivers.serial import Decoded, Sample
from drivers.serial.modbus import port_settings
from drivers.serial.port import PortSettings
from drivers.serial.sdm import PROFILES, decode_registers
from drivers.serial.service import SerialService
from hub.config import DeviceConfig
from hub.errors import BadInputReason, ConfigError
from hub.events import DeviceDiscovered
from hub.measurements import Measurement as M
from tests.serial_support import (
    SDM120_VALUES,
    SDM630_VALUES,
    NullModem,
    PluggablePort,
    RecordingSink,
    running,
)
from tests.sync_support import FakeClock
from tests.test_zeroconf import LogEvents

FLOAT32 = AsyncModbusSerialClient.DATATYPE.FLOAT32


def registers(values: Mapping[int, float], top: int = 0x0160) -> dict[int, int]:
    """A meter's input registers 0..top-1: zeros, with `values` as FLOAT32 at their addresses."""
    regs = dict.fromkeys(range(top), 0)
    for address, value in values.items():
        if address + 1 < top:
            high, low = AsyncModbusSerialClient.convert_to_registers(value, FLOAT32)
            regs[address], regs[address + 1] = high, low
    return regs


def meter(values: Mapping[int, float], top: int = 0x0160) -> ModbusDeviceContext:
    block = ModbusSparseDataBlock(registers(values, top))  # type: ignore[no-untyped-call]  # pymodbus' datastore is untyped
    return ModbusDeviceContext(ir=block)


@contextlib.asynccontextmanager
async def modbus_server(
    path: str, meters: dict[int, ModbusDeviceContext | ModbusSimulatorContext]
) -> AsyncIterator[ModbusSerialServer]:
    server = ModbusSerialServer(
        ModbusServerContext(devices=meters, single=False),
        framer=FramerType.RTU,
        port=path,
        baudrate=9600,
    )
    await server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped


def sdm(device_id: str, model: str, port: Path, unit: int, **extra: object) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {"id": device_id, "adapter": "modbus", "model": model, "port": str(port), "unit": unit}
        | {"poll_s": 0.5}
        | extra
    )


def service(devices: list[DeviceConfig], sink: RecordingSink, clock: FakeClock) -> SerialService:
    return SerialService(
        devices, sink, clock, reopen_initial_s=0.01, reopen_cap_s=0.05, modbus_timeout_s=0.2
    )


# -- the decoder, without I/O ----------------------------------------------------------------


def test_sdm120_registers_decode_whole() -> None:
    assert decode_registers("SDM120", registers(SDM120_VALUES)) == Decoded(
        (
            Sample(M.VOLTAGE, 230.1),
            Sample(M.CURRENT, 5.25),
            Sample(M.POWER, 1207.5),
            Sample(M.FREQUENCY, 50.0),
            Sample(M.ENERGY, 1234.5),
        )
    )


def test_a_nan_register_pair_is_refused_alone() -> None:
    regs = registers(SDM120_VALUES)
    regs[0x0000], regs[0x0001] = 0x7FC0, 0x0000  # FLOAT32 quiet NaN
    decoded = decode_registers("SDM220", regs)
    assert [e.reason for e in decoded.refused] == [BadInputReason.NOT_FINITE]
    assert "0x0000" in decoded.refused[0].detail
    assert [s.measurement for s in decoded.samples] == [M.CURRENT, M.POWER, M.FREQUENCY, M.ENERGY]


def test_every_profile_field_is_inside_a_block_it_reads() -> None:
    for profile in PROFILES.values():
        read = {a for b in profile.blocks for a in range(b.address, b.address + b.count)}
        for field in profile.fields:
            assert {field.address, field.address + 1} <= read, (profile.model, field)


def test_port_settings() -> None:
    assert port_settings("/dev/ttyUSB0", None, None) == PortSettings("/dev/ttyUSB0", 9600)
    assert port_settings("/dev/ttyUSB0", 19200, "E") == PortSettings(
        "/dev/ttyUSB0", 19200, parity="E"
    )


def test_one_port_one_protocol() -> None:
    port = Path("/dev/ttyUSB0")
    sink, clock = RecordingSink(), FakeClock()
    with pytest.raises(ConfigError, match="one protocol"):
        SerialService(
            [sdm("a", "SDM120", port, 1), DeviceConfig(id="p1", adapter="dsmr", port=str(port))],
            sink,
            clock,
        )
    with pytest.raises(ConfigError, match="same unit"):
        SerialService([sdm("a", "SDM120", port, 1), sdm("b", "SDM630", port, 1)], sink, clock)
    with pytest.raises(ConfigError, match="baudrate"):
        SerialService(
            [sdm("a", "SDM120", port, 1), sdm("b", "SDM630", port, 2, baudrate=19200)], sink, clock
        )
    assert SerialService([sdm("a", "SDM120", port, 1)], sink, clock).ports == (str(port),)


# -- through a pty null modem, against pymodbus' RTU server ----------------------------------


async def test_two_meters_on_one_port_then_an_unplug(tmp_path: Path, clock: FakeClock) -> None:
    sink = RecordingSink()
    modem = NullModem(tmp_path / "ttyUSB0")
    bridge = f"serial:{modem.port.path}"
    devices = [
        sdm("kitchen", "SDM120", modem.port.path, 1),
        sdm("mains", "SDM630", modem.port.path, 2),
    ]
    try:
        async with modbus_server(
            modem.device.path, {1: meter(SDM120_VALUES), 2: meter(SDM630_VALUES)}
        ):
            async with running(service(devices, sink, clock)):
                await sink.wait_for(
                    lambda s: len(s.values("kitchen")) == 5 and len(s.values("mains")) == 3
                )
                await sink.wait_for(lambda s: all(s.values(f"mains-l{n}") for n in (1, 2, 3)))
                assert sink.values("kitchen") == {
                    M.VOLTAGE: 230.1,
                    M.CURRENT: 5.25,
                    M.POWER: 1207.5,
                    M.FREQUENCY: 50.0,
                    M.ENERGY: 1234.5,
                }
                assert sink.values("mains") == {
                    M.POWER: 1530.75,
                    M.FREQUENCY: 49.98,
                    M.ENERGY: 98765.4,
                }
                assert sink.values("mains-l1") == {M.VOLTAGE: 230.1, M.CURRENT: 1.5, M.POWER: 340.5}
                assert sink.values("mains-l2") == {
                    M.VOLTAGE: 231.2,
                    M.CURRENT: 2.25,
                    M.POWER: 500.25,
                }
                assert sink.values("mains-l3") == {M.VOLTAGE: 229.8, M.CURRENT: 3.0, M.POWER: 690.0}
                assert [e.device_id for e in sink.events if isinstance(e, DeviceDiscovered)] == [
                    "mains-l1",
                    "mains-l2",
                    "mains-l3",
                ]
                assert all(r.at == clock.now() for r in sink.readings())
                assert sink.availability(bridge) == [True]
                assert sink.availability("kitchen") == [True]
                assert sink.availability("mains") == [True]
                assert sink.refused == []
                # Polled again after poll_s (0.5 s here), in turn on the one client.
                await sink.wait_for(lambda s: len(s.readings("kitchen")) >= 10)
                assert sink.availability("kitchen") == [True]

                # Unplug the adapter: the port and both meters go offline at once (not at the next
                # poll); plugged back in, polling resumes.
                modem.unplug()
                await sink.wait_for(lambda s: s.availability(bridge) == [True, False])
                assert sink.availability("kitchen") == [True, False]
                assert sink.availability("mains") == [True, False]
                before = len(sink.readings("kitchen"))
                modem.plug()
                await sink.wait_for(lambda s: s.availability(bridge) == [True, False, True])
                await sink.wait_for(lambda s: len(s.readings("kitchen")) >= before + 5)
                assert sink.availability("kitchen") == [True, False, True]
                assert sink.values("kitchen")[M.VOLTAGE] == 230.1
    finally:
        modem.close()


async def test_a_meter_that_refuses_some_registers(tmp_path: Path, clock: FakeClock) -> None:
    """An SDM630 configured where the meter only has registers up to 0x0011 (a wrong model):
    the blocks it refuses are counted (UNSUPPORTED), the phase values still arrive."""
    sink = RecordingSink()
    modem = NullModem(tmp_path / "ttyUSB0")
    devices = [sdm("garage", "SDM630", modem.port.path, 3)]
    try:
        async with modbus_server(modem.device.path, {3: meter(SDM630_VALUES, top=0x0012)}):
            async with running(service(devices, sink, clock)):
                await sink.wait_for(lambda s: len(s.refused) >= 3)
                assert sink.refused[:3] == [
                    ("modbus garage", BadInputReason.UNSUPPORTED, detail)
                    for detail in (
                        "unit 3 registers 0x0034+2: Modbus exception 2",
                        "unit 3 registers 0x0046+2: Modbus exception 2",
                        "unit 3 registers 0x0156+2: Modbus exception 2",
                    )
                ]
                assert sink.values("garage-l2") == {
                    M.VOLTAGE: 231.2,
                    M.CURRENT: 2.25,
                    M.POWER: 500.25,
                }
                assert sink.values("garage") == {}
                assert sink.availability("garage") == [True]
    finally:
        modem.close()


async def test_a_meter_that_does_not_answer_is_offline(tmp_path: Path, clock: FakeClock) -> None:
    """The port opens (the bridge is online) but nothing answers unit 5: the meter is offline."""
    sink = RecordingSink()
    port = PluggablePort(tmp_path / "ttyUSB1")
    port.plug()
    devices = [sdm("shed", "SDM220", port.path, 5)]
    try:
        async with running(service(devices, sink, clock)):
            await sink.wait_for(lambda s: s.availability("shed") == [False])
            assert sink.availability(f"serial:{port.path}") == [True]
            assert sink.readings() == []
            assert sink.refused == []
    finally:
        port.close()


async def test_a_port_that_cannot_be_opened_says_why(tmp_path: Path, clock: FakeClock) -> None:
    """pymodbus' own log is silenced: the warning must carry the OS's reason (here, not a
    device; for a hub user outside `dialout`, "Permission denied")."""
    not_a_port = tmp_path / "ttyUSB0"
    not_a_port.mkdir()
    sink = RecordingSink()
    service = SerialService([sdm("a", "SDM120", not_a_port, 1)], sink, clock)
    with LogEvents.of("drivers.serial.port") as logs:
        async with running(service):
            await logs.wait_for("failed")
    [record] = logs.matching("failed")
    assert f"cannot open {not_a_port}: Is a directory" in record.getMessage()
