"""JSON-lines sensors: one JSON object of measurements per line, e.g. an ESP32 or Arduino leak
sensor on USB printing `{"water_leak": true, "temperature": 21.5}`.

Keys are `Measurement` values; each value is checked like a native MQTT payload's (booleans for
alarms, numbers within their plausible range, valve states). The port defaults to 115200 8N1.

A line is at most `MAX_LINE_BYTES`; a longer one is refused once (TOO_LARGE) and skipped up to its
newline. A line that is not a JSON object is refused whole (MALFORMED_JSON, NOT_AN_OBJECT,
NOT_FINITE for `NaN`); an unknown key or a bad value is refused alone and the rest of the line
still counts. Blank lines (CR LF keep-alives) are ignored.
"""

from __future__ import annotations

import logging

from drivers.mqtt.adapter import Sink
from drivers.mqtt.payload import measurement_value, parse_object
from drivers.serial import Decoded, Sample
from drivers.serial.port import PortSettings
from drivers.serial.stream_device import StreamDevice
from hub.errors import BadInputError, BadInputReason
from hub.measurements import Measurement

__all__ = [
    "DEFAULT_BAUDRATE",
    "MAX_LINE_BYTES",
    "JsonLinesDevice",
    "LineFramer",
    "decode_line",
    "port_settings",
]

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 115200
MAX_LINE_BYTES = 4096
_BY_NAME = {m.value: m for m in Measurement}


def port_settings(port: str, baudrate: int | None) -> PortSettings:
    return PortSettings(port, baudrate or DEFAULT_BAUDRATE)


def decode_line(line: bytes) -> Decoded:
    """The readings in one line (without its newline). Raises `BadInputError` when the whole
    line is refused; values refused one by one are in `Decoded.refused`."""
    data = parse_object(line, MAX_LINE_BYTES)
    samples: list[Sample] = []
    refused: list[BadInputError] = []
    for key, raw in data.items():
        measurement = _BY_NAME.get(key)
        if measurement is None:
            refused.append(BadInputError(BadInputReason.UNKNOWN_KEY, f"unknown key {key!r:.40}"))
            continue
        try:
            samples.append(Sample(measurement, measurement_value(measurement, raw)))
        except BadInputError as err:
            refused.append(err)
    if not samples and not refused:
        raise BadInputError(BadInputReason.UNSUPPORTED, "an empty object holds no reading")
    return Decoded(tuple(samples), tuple(refused))


class LineFramer:
    """Splits a byte stream into lines of at most `max_bytes` (CR LF or LF); bounded."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self._skipping = False  # inside a line already refused as too long

    @property
    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | BadInputError]:
        out: list[bytes | BadInputError] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end == -1:
                self._hold(data[start:], out)
                return out
            piece = data[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if len(self._buf) + len(piece) > self._max:
                out.append(_too_long(len(self._buf) + len(piece), self._max))
                self._buf.clear()
                continue
            line = bytes(self._buf + piece).strip(b"\r")
            self._buf.clear()
            if line.strip():
                out.append(line)

    def _hold(self, rest: bytes, out: list[bytes | BadInputError]) -> None:
        if self._skipping:
            return
        self._buf += rest
        if len(self._buf) > self._max:
            out.append(_too_long(len(self._buf), self._max))
            self._buf.clear()
            self._skipping = True


def _too_long(size: int, limit: int) -> BadInputError:
    return BadInputError(BadInputReason.TOO_LARGE, f"line of {size}+ bytes (limit {limit})")


class JsonLinesDevice(StreamDevice[bytes]):
    """One port's JSON-lines sensor: lines in, readings, refusals and its availability out.

    A sensor may print only when something changes: silence is not a fault (no `silent_after_s`).
    """

    adapter = "json_lines"

    def __init__(self, device_id: str, name: str, sink: Sink) -> None:
        super().__init__(device_id, name, sink, LineFramer(), decode_line)
