"""A serial port as an async byte stream, and the loop that keeps it open.

pyserial opens and configures the port (termios: speed, parity, raw mode; an exclusive `flock`),
and leaves the descriptor non-blocking; reads are plain `os.read` calls woken by the event loop's
`add_reader`, so no thread is involved and a pty behaves like a USB adapter. A port is lost when a
read ends (EOF: the pty master closed, or the USB adapter was unplugged) or fails (EIO, ENODEV);
`PortKeeper` then reports the bridge `serial:<port>` offline and reopens it with capped, jittered
backoff until the path works again (udev re-creates `/dev/serial/by-id/...` on re-plug).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NoReturn, Protocol

import serial

from drivers.mqtt.adapter import Sink
from drivers.serial import Presence, bridge_id
from hub.backoff import Backoff
from hub.clock import Clock

__all__ = [
    "PortError",
    "PortKeeper",
    "PortLost",
    "PortSettings",
    "PortUnavailable",
    "SerialPort",
    "StreamDevice",
    "run_stream",
]

_log = logging.getLogger(__name__)

#: Bytes asked of the kernel per read (a DSMR 5 telegram is ≈ 1 KB; 115200 baud ≈ 11.5 KB/s).
_CHUNK = 4096

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class PortSettings:
    path: str
    baudrate: int
    bytesize: Literal[7, 8] = 8
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1

    def describe(self) -> str:
        return f"{self.path} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


class PortError(Exception):
    """A serial port could not be used. `errno` is the OS's reason when there is one."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


class PortUnavailable(PortError):
    """The port could not be opened (missing, busy, no permission, not a tty)."""


class PortLost(PortError):
    """An open port went away (unplugged, or its far end closed)."""


class SerialPort:
    """An open serial port: `async with SerialPort(settings) as port: data = await port.read()`."""

    def __init__(self, settings: PortSettings) -> None:
        self.settings = settings
        self._serial: serial.Serial | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> SerialPort:
        s = self.settings
        try:
            self._serial = serial.Serial(
                port=s.path,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=0,
                exclusive=True,  # a second reader would steal bytes from the first
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise PortUnavailable(f"cannot open {s.path}: {err}", _errno(err)) from err
        try:
            _eof_means_hangup(self._fd)
        except (termios.error, OSError) as err:
            self._serial.close()
            self._serial = None
            raise PortUnavailable(f"cannot set up {s.path}: {err}") from err
        asyncio.get_running_loop().add_reader(self._fd, self._ready.set)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._serial is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            try:
                self._serial.close()
            except (serial.SerialException, OSError) as err:
                _log.debug("closing %s: %s", self.settings.path, err)
            self._serial = None

    @property
    def _fd(self) -> int:
        if self._serial is None:
            raise PortLost(f"{self.settings.path} is not open")
        fd: int = self._serial.fd
        return fd

    async def read(self) -> bytes:
        """The next bytes the port received (waits for some). Raises `PortLost`."""
        waited = False
        while True:
            try:
                data = os.read(self._fd, _CHUNK)
            except BlockingIOError:  # nothing yet (or a stale wake-up): wait for the loop's word
                self._ready.clear()
                await self._ready.wait()
                waited = True
                continue
            except OSError as err:
                raise PortLost(f"{self.settings.path}: {err.strerror}", err.errno) from err
            if not data:
                raise PortLost(f"{self.settings.path}: end of file (unplugged?)")
            if not waited:
                # Bytes were waiting: a port that never runs dry (a USB board printing in a
                # loop, far faster than any baud rate) would otherwise hold the event loop, and
                # the leak path, for as long as it keeps sending. Give the loop its turn.
                await asyncio.sleep(0)
            return data


def _eof_means_hangup(fd: int) -> None:
    """VMIN 1, VTIME 0 (pyserial leaves both 0): on the non-blocking descriptor an idle port
    then reads as EAGAIN and only a hang-up (unplug) reads as an end of file."""
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _errno(err: BaseException) -> int | None:
    code = getattr(err, "errno", None)
    return code if isinstance(code, int) else None


class PortKeeper:
    """Keeps one port in use: runs a session on it, and after a failure waits and runs it again.

    Reports the bridge `serial:<port>` online when a session says the port is open and offline
    when it fails; the first failure of an outage is a WARNING, the retries are DEBUG.
    """

    def __init__(
        self,
        path: str,
        sink: Sink,
        clock: Clock,
        backoff: Backoff,
        on_lost: Callable[[float], None],
    ) -> None:
        self.path = path
        self.bridge_id = bridge_id(path)
        self._presence = Presence(sink)
        self._clock = clock
        self._backoff = backoff
        self._on_lost = on_lost
        self._quiet = False  # an outage was already logged

    @property
    def is_open(self) -> bool:
        return self._presence.online(self.bridge_id) is True

    def opened(self) -> None:
        """The session opened the port (call once per session, before it starts reading)."""
        if self._quiet:
            _log.info("serial port %s is back", self.path)
        self._quiet = False
        self._backoff.reset()
        self._presence.set(self.bridge_id, True, self._clock.now())

    async def run(self, session: Callable[[], Awaitable[None]]) -> NoReturn:
        """Run `session` (which returns or raises `PortError` when the port fails) forever."""
        while True:
            try:
                await session()
                error: Exception = PortLost(f"{self.path}: session ended")
            except PortError as err:
                error = err
            except Exception as err:  # noqa: BLE001  (a bug must not take the hub down: log, reopen)
                level = logging.DEBUG if self._quiet else logging.ERROR
                _log.log(level, "serial port %s: unexpected error", self.path, exc_info=True)
                error = err
            self._failed(error)
            await asyncio.sleep(self._backoff.next_delay())

    def _failed(self, error: Exception) -> None:
        at = self._clock.now()
        self._presence.set(self.bridge_id, False, at)
        self._on_lost(at)
        missing = isinstance(error, PortError) and error.errno == errno.ENOENT
        if self._quiet:
            _log.debug("serial port %s still unavailable: %s", self.path, error)
        elif missing:
            _log.warning("serial port %s is missing (%s); retrying quietly", self.path, error)
        else:
            _log.warning("serial port %s failed (%s); reopening", self.path, error)
        self._quiet = True


class StreamDevice(Protocol):
    """A device that talks by itself on its port (DSMR, JSON lines): bytes in, events out."""

    #: Seconds without a byte after which the device counts as silent (None: it may be quiet).
    silent_after_s: float | None

    def feed(self, data: bytes, at: float) -> None:
        """Decode what arrived; emits readings and refusals, never raises."""

    def silent(self, at: float) -> None:
        """Nothing arrived for `silent_after_s` (the port is open): the device is offline."""

    def lost(self, at: float) -> None:
        """The port went away: the device is offline, and a partial frame is dropped."""


async def run_stream(
    settings: PortSettings, device: StreamDevice, keeper: PortKeeper, clock: Clock
) -> NoReturn:
    """Read a port into `device` until cancelled, reopening it whenever it fails.

    `keeper` is the port's `PortKeeper`, made with `on_lost=device.lost`.
    """

    async def session() -> None:
        async with SerialPort(settings) as port:
            keeper.opened()
            _log.info("serial port %s open", settings.describe())
            while True:
                try:
                    async with asyncio.timeout(device.silent_after_s):
                        data = await port.read()
                except TimeoutError:
                    device.silent(clock.now())  # e.g. the P1 cable pulled, the adapter still in
                    continue
                device.feed(data, clock.now())

    await keeper.run(session)
