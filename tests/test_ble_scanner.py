"""The adapter source: no D-Bus here, so the real bleak fails to start, and the service must say
so once and run on; the passive → active fallback and the queue are driven through a stand-in for
bleak's `BleakScanner` (the library boundary) fed with recorded adverts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from drivers.ble import scanner as scanner_module
from drivers.ble.advert import Advert
from drivers.ble.recording import read_recording
from drivers.ble.scanner import NO_ADAPTER, OR_PATTERNS, BleakSource, bridge_id
from drivers.ble.service import BleService
from hub.config import DeviceConfig
from hub.contained import ServiceFaults, contained
from hub.errors import BadInputError
from hub.events import Availability, Reading
from hub.measurements import Measurement as M
from tests.helpers import HeldPause

NOW = 1_800_000_000.0
ATC = "A4:C1:38:8D:18:B2"
DEVICES = [DeviceConfig(id="lounge", adapter="bthome", address=ATC)]


class Clock:
    def now(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return 0.0


class WaitingSink:
    """Records what the service emits; tests wait for what they expect, never for time."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.refused: list[tuple[str, BadInputError]] = []
        self._changed = asyncio.Event()

    def emit(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()

    def refuse(self, subject: str, err: BadInputError) -> None:
        self.refused.append((subject, err))
        self._changed.set()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                self._changed.clear()
                await self._changed.wait()


class Counting(logging.Handler):
    """Sets `event` once `n` records containing `text` were logged."""

    def __init__(self, text: str, n: int) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.n, self.seen = text, n, 0
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen += 1
            if self.seen >= self.n:
                self.event.set()


@pytest.fixture
def no_dbus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No system bus, here and on a developer's machine with BlueZ running (as in a container)."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")


@pytest.mark.usefixtures("no_dbus")
async def test_no_dbus_says_so_once_and_runs_on(caplog: pytest.LogCaptureFixture) -> None:
    sink = WaitingSink()
    source = BleakSource(Clock(), retry_initial_s=0.001, retry_cap_s=0.002)
    service = BleService(DEVICES, sink, Clock(), source=source)
    retries = Counting("still no Bluetooth adapter", 3)
    logger = logging.getLogger(scanner_module.__name__)
    logger.addHandler(retries)
    caplog.set_level(logging.DEBUG, logger=scanner_module.__name__)
    try:
        task = asyncio.create_task(service.run())
        async with asyncio.timeout(10):
            await retries.event.wait()  # it has tried again three times, and is still running
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        logger.removeHandler(retries)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == [NO_ADAPTER]
    assert sink.events == [Availability("ble:hci0", False, NOW)]
    assert source.mode is None


@pytest.mark.usefixtures("no_dbus")
async def test_the_default_source_is_the_adapter_hci0(caplog: pytest.LogCaptureFixture) -> None:
    sink = WaitingSink()
    service = BleService(DEVICES, sink, Clock())
    task = asyncio.create_task(service.run())
    await sink.wait_for(lambda: bool(sink.events))
    assert sink.events == [Availability(bridge_id("hci0"), False, NOW)]
    assert service.status()["online"] is False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert NO_ADAPTER in caplog.text


# -- through a stand-in for bleak's BleakScanner ------------------------------------------------


class FakeScanner:
    """bleak's `BleakScanner` as BlueZ without the advertisement monitor behaves: a passive
    start fails, an active one works and calls the detection callback."""

    instances: ClassVar[list[FakeScanner]] = []
    passive_error = BleakError(
        "passive scanning on Linux requires BlueZ >= 5.56 with --experimental enabled"
    )

    def __init__(self, callback: Callable[[BLEDevice, AdvertisementData], None], **kw: Any):
        self.callback = callback
        self.kwargs = kw
        self.started = False
        self.stopped = False
        type(self).instances.append(self)

    async def start(self) -> None:
        if self.kwargs["scanning_mode"] == "passive":
            raise self.passive_error
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def advertise(self, advert: Advert) -> None:
        device = BLEDevice(advert.address, advert.name, None)
        data = AdvertisementData(
            local_name=advert.name,
            manufacturer_data=dict(advert.manufacturer_data),
            service_data=dict(advert.service_data),
            service_uuids=list(advert.service_uuids),
            tx_power=None,
            rssi=advert.rssi,
            platform_data=(),
        )
        self.callback(device, data)


@pytest.fixture
def fake_bleak(monkeypatch: pytest.MonkeyPatch) -> type[FakeScanner]:
    FakeScanner.instances = []
    monkeypatch.setattr(scanner_module, "BleakScanner", FakeScanner)
    return FakeScanner


def recorded(name: str) -> tuple[Advert, ...]:
    return read_recording(Path(__file__).parent / "payloads" / "ble" / name).adverts


async def test_falls_back_to_active_once_and_decodes(
    fake_bleak: type[FakeScanner], caplog: pytest.LogCaptureFixture
) -> None:
    sink = WaitingSink()
    source = BleakSource(Clock(), adapter="hci1")
    service = BleService(DEVICES, sink, Clock(), source=source)
    task = asyncio.create_task(service.run())
    await sink.wait_for(lambda: bool(sink.events))
    assert sink.events == [Availability("ble:hci1", True, NOW)]
    passive, active = fake_bleak.instances
    assert passive.kwargs["bluez"] == {"adapter": "hci1", "or_patterns": OR_PATTERNS}
    assert active.kwargs["scanning_mode"] == "active"
    assert active.started
    assert source.mode == "active"
    assert "passive BLE scanning is not available on hci1" in caplog.text

    thermometer, battery = recorded("bthome.jsonl")[:2]
    active.advertise(thermometer)
    active.advertise(Advert("11:22:33:44:55:66", -70, 0.0, manufacturer_data={76: b"\x10"}))
    active.advertise(battery)
    await sink.wait_for(lambda: len(sink.events) == 4)
    assert sink.events[1:] == [
        Reading("lounge", M.TEMPERATURE, 25.06, NOW),
        Reading("lounge", M.HUMIDITY, 50.55, NOW),
        Reading("lounge", M.BATTERY, 93.0, NOW),
    ]
    assert source.received == 2  # the neighbour's advert never reached the queue
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert active.stopped
    assert caplog.text.count("passive BLE scanning is not available") == 1


async def test_a_full_queue_drops_the_oldest(fake_bleak: type[FakeScanner]) -> None:
    sink = WaitingSink()
    source = BleakSource(Clock(), queue_size=2)
    service = BleService(DEVICES, sink, Clock(), source=source)
    task = asyncio.create_task(service.run())
    await sink.wait_for(lambda: bool(sink.events))
    active = fake_bleak.instances[-1]
    thermometer, battery = recorded("bthome.jsonl")[:2]
    for _ in range(4):  # faster than the service takes them (the loop does not run in between)
        active.advertise(thermometer)
    active.advertise(battery)
    await sink.wait_for(
        lambda: any(getattr(e, "measurement", None) is M.BATTERY for e in sink.events)
    )
    assert source.dropped == 3
    assert service.status()["dropped"] == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_passive_capable_bluez_scans_passively(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class PassiveOk(FakeScanner):
        async def start(self) -> None:
            self.started = True

    PassiveOk.instances = []
    monkeypatch.setattr(scanner_module, "BleakScanner", PassiveOk)
    sink = WaitingSink()
    source = BleakSource(Clock())
    task = asyncio.create_task(BleService(DEVICES, sink, Clock(), source=source).run())
    await sink.wait_for(lambda: bool(sink.events))
    assert source.mode == "passive"
    assert len(PassiveOk.instances) == 1
    assert "not available" not in caplog.text
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert PassiveOk.instances[0].stopped


class FailingOnce(WaitingSink):
    """A sink whose first reading meets an error nobody expected (somewhere downstream)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def emit(self, event: object) -> None:
        if isinstance(event, Reading) and not self.failed:
            self.failed = True
            raise RuntimeError("downstream: something nobody expected")
        super().emit(event)


async def test_a_run_that_fails_reports_the_bridge_down_and_the_next_drops_stale_adverts(
    fake_bleak: type[FakeScanner],
) -> None:
    sink = FailingOnce()
    source = BleakSource(Clock())
    service = BleService(DEVICES, sink, Clock(), source=source)
    pause = HeldPause()
    faults = ServiceFaults()
    task = asyncio.create_task(contained("ble", service.run, faults, sleep=pause))
    await sink.wait_for(lambda: bool(sink.events))
    first = fake_bleak.instances[-1]
    thermometer, battery = recorded("bthome.jsonl")[:2]
    first.advertise(thermometer)  # its reading fails the run
    first.advertise(thermometer)  # queued behind it: stale by the time a run takes it
    await pause.paused.wait()
    assert sink.events == [
        Availability("ble:hci0", True, NOW),
        Availability("ble:hci0", False, NOW),
    ]
    assert first.stopped
    assert not service.online
    pause.resume.set()
    await sink.wait_for(lambda: len(sink.events) == 3)
    assert sink.events[2] == Availability("ble:hci0", True, NOW)
    second = fake_bleak.instances[-1]
    assert second is not first
    assert source.dropped == 1  # the stale advert
    second.advertise(battery)
    await sink.wait_for(lambda: len(sink.events) == 4)
    assert sink.events[3] == Reading("lounge", M.BATTERY, 93.0, NOW)
    assert faults.failures["ble"][:2] == (1, "RuntimeError: downstream: something nobody expected")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
