"""Pseudo-terminal helpers for the serial tests: a pty pair, a re-pluggable port, a null-modem relay.

The code under test opens a path (`os.ttyname(slave)`, or a symlink to it) as it would open
`/dev/ttyUSB0`; the test plays the device on the master side. Closing the master is an unplug: the
code's reads on the slave end with EOF. A `PluggablePort` is a symlink (`tmp_path/"ttyUSB0"`)
re-pointed at a fresh pty on every `plug()`, like udev re-creating a `/dev/serial/by-id/` link.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drivers.serial.service import SerialService
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Reading
from hub.measurements import Measurement
from tests.task_support import background

#: Upper bound on any single wait in these tests: a hang fails loudly instead of timing out pytest.
WAIT_S = 10.0

#: What the SDM meters the tests play hold, at Eastron's input-register addresses (FLOAT32).
SDM120_VALUES = {0x0000: 230.1, 0x0006: 5.25, 0x000C: 1207.5, 0x0046: 50.0, 0x0156: 1234.5}
SDM630_VALUES = {
    0x0000: 230.1,
    0x0002: 231.2,
    0x0004: 229.8,
    0x0006: 1.5,
    0x0008: 2.25,
    0x000A: 3.0,
    0x000C: 340.5,
    0x000E: 500.25,
    0x0010: 690.0,
    0x0034: 1530.75,
    0x0046: 49.98,
    0x0156: 98765.4,
}


class PtyPair:
    """One pseudo-terminal: the test holds the master, the code opens `path` (the slave)."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        # Raw before the code opens it: bytes written now must not meet the line discipline
        # (ICRNL would turn a telegram's CR LF into LF LF and break its CRC).
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def close(self) -> None:
        """Unplug: the far end reads EOF from now on and the slave path disappears."""
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self._slave)


class PluggablePort:
    """A stable path (a symlink) that can be unplugged and plugged back in (a new pty)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pty: PtyPair | None = None

    def plug(self) -> PtyPair:
        pty = PtyPair()
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(pty.path)
        tmp.replace(self.path)  # atomic: the code never sees a half-made link
        self.pty = pty
        return pty

    def unplug(self) -> None:
        if self.pty is not None:
            self.pty.close()
            self.pty = None
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.unplug()


class NullModem:
    """Two pty pairs joined master to master: a pymodbus server on one slave, the code on the other.

    The code's side is a `PluggablePort`, so a test can unplug it while the server keeps running.
    Copies bytes on the event loop (`add_reader`), like `socat pty pty` would.
    """

    def __init__(self, code_side: Path) -> None:
        self.device = PtyPair()  # the meter's end
        self.port = PluggablePort(code_side)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.device.master, self._from_device)
        self.plug()

    def plug(self) -> None:
        pty = self.port.plug()
        self._loop.add_reader(pty.master, self._from_code, pty)

    def unplug(self) -> None:
        if self.port.pty is not None:
            self._loop.remove_reader(self.port.pty.master)
        self.port.unplug()

    def _from_device(self) -> None:
        data = _read(self.device.master)
        if data and self.port.pty is not None:
            self.port.pty.write(data)  # while unplugged, the meter's answers go nowhere

    def _from_code(self, pty: PtyPair) -> None:
        data = _read(pty.master)
        if data is None:
            self._loop.remove_reader(pty.master)
        elif data:
            self.device.write(data)

    def close(self) -> None:
        self.unplug()
        self._loop.remove_reader(self.device.master)
        self.device.close()


def _read(fd: int) -> bytes | None:
    """What is waiting on a master fd; `None` once the slave side is gone for good (EIO)."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError:
        return None


@dataclass
class RecordingSink:
    """A `Sink` that records what the service emitted and refused, and lets a test wait for it."""

    events: list[object] = field(default_factory=list)
    refused: list[tuple[str, BadInputReason, str]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()

    def refuse(self, subject: str, err: BadInputError) -> None:
        self.refused.append((subject, err.reason, err.detail))
        self._changed.set()

    async def wait_for(
        self, done: Callable[[RecordingSink], bool], timeout: float = WAIT_S
    ) -> None:
        """Wait until `done(self)` holds, re-checking after every emit or refusal."""
        async with asyncio.timeout(timeout):
            while not done(self):
                self._changed.clear()
                await self._changed.wait()

    def readings(self, device_id: str | None = None) -> list[Reading]:
        return [
            e
            for e in self.events
            if isinstance(e, Reading) and (device_id is None or e.device_id == device_id)
        ]

    def values(self, device_id: str) -> dict[Measurement, object]:
        """The latest value of each measurement of a device."""
        return {r.measurement: r.value for r in self.readings(device_id)}

    def availability(self, device_id: str) -> list[bool]:
        return [
            e.online
            for e in self.events
            if isinstance(e, Availability) and e.device_id == device_id
        ]

    def reasons(self) -> list[BadInputReason]:
        return [reason for _, reason, _ in self.refused]


def running(service: SerialService) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """Run a service in a task for the body of the `async with`; cancel it and wait at the end."""
    return background(service.run(), name="serial-under-test")
