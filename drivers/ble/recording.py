"""The replay file: recorded advertisements, one JSON object a line, bytes in hex.

    # a comment line (where the advert came from); blank lines are skipped too
    {"t": 1709331995.518, "address": "A4:C1:38:8D:18:B2", "rssi": -60, "name": "ATC_8D18B2",
     "service_data": {"fcd2": "4002ca0903bf13"}, "manufacturer_data": {"1177": "0102"},
     "service_uuids": ["fcd2"]}

(one line in the file). `t` is POSIX seconds; service UUIDs are 16-bit (`fcd2`) or full 128-bit;
manufacturer ids are decimal. `name`, `service_data`, `manufacturer_data` and `service_uuids`
may be left out. A line longer than `MAX_LINE` bytes, or one that is not such an object (a `t`
no float holds included), is counted and skipped (`BadInputError`, reason `bad_frame`), never
fatal. A lone UTF-16 surrogate in a name (`"\\ud83d"`) is read as U+FFFD, as in MQTT payloads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from drivers.ble.advert import MAC, Advert, normalize_uuid, short_uuid
from drivers.mqtt.payload import utf8_text
from hub.atomic_file import json_number
from hub.errors import BadInputError, BadInputReason

#: Longest line accepted, in bytes (an extended advertisement is at most 255 bytes: ~1 KiB here).
MAX_LINE = 8192
#: Longest service or manufacturer data value, in bytes, and most entries in each mapping.
_MAX_DATA = 255
_MAX_ENTRIES = 32
_KEYS = frozenset(
    {"t", "address", "rssi", "name", "service_data", "manufacturer_data", "service_uuids"}
)


@dataclass(frozen=True, slots=True)
class Recording:
    """The adverts of a recording, and the lines that were refused (line number, why)."""

    adverts: tuple[Advert, ...]
    bad_lines: tuple[tuple[int, BadInputError], ...]


def parse_line(line: str | bytes) -> Advert | None:
    """The advert on one line; None for a blank or comment line. Raises `BadInputError`."""
    if len(line) > MAX_LINE:
        raise _bad(f"line longer than {MAX_LINE} bytes")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("not UTF-8") from None
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _bad(f"not JSON: {err}") from None
    except RecursionError:  # `[[[[...` thousands deep: json gives up by recursion
        raise _bad("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise _bad("not a JSON object")
    return _advert(data)


def parse_lines(lines: Iterable[str | bytes]) -> Recording:
    adverts: list[Advert] = []
    bad: list[tuple[int, BadInputError]] = []
    for number, line in enumerate(lines, start=1):
        try:
            advert = parse_line(line)
        except BadInputError as err:
            bad.append((number, err))
            continue
        if advert is not None:
            adverts.append(advert)
    return Recording(tuple(adverts), tuple(bad))


def read_recording(path: Path) -> Recording:
    """Every advert in the file (blocking: call it off the event loop). Raises `OSError`."""
    with path.open("rb") as f:
        return parse_lines(_bounded_lines(f))


def _bounded_lines(f: IO[bytes]) -> Iterator[bytes]:
    """The file's lines, each cut at `MAX_LINE + 1` bytes (so an overlong one is refused, and a
    file with no newlines at all is never read into memory whole)."""
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := f.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
        yield line


def format_advert(advert: Advert) -> str:
    """One line (without the newline) that `parse_line` reads back as an equal advert."""
    record: dict[str, Any] = {"t": advert.time, "address": advert.address, "rssi": advert.rssi}
    if advert.name is not None:
        record["name"] = advert.name
    if advert.service_data:
        record["service_data"] = {short_uuid(u): v.hex() for u, v in advert.service_data.items()}
    if advert.manufacturer_data:
        record["manufacturer_data"] = {str(k): v.hex() for k, v in advert.manufacturer_data.items()}
    if advert.service_uuids:
        record["service_uuids"] = [short_uuid(u) for u in advert.service_uuids]
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


class RecordingWriter:
    """Appends adverts to a recording file, one line each (blocking writes: keep them off the
    event loop's hot path, or accept a buffered write per advert)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None
        self.written = 0

    def __enter__(self) -> Self:
        self._file = self._path.open("a", encoding="utf-8")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, advert: Advert) -> None:
        if self._file is None:
            raise RuntimeError("RecordingWriter is not open (use it in a `with`)")
        self._file.write(format_advert(advert) + "\n")
        self.written += 1


# -- validation -------------------------------------------------------------------------------


def _advert(data: dict[str, Any]) -> Advert:
    unknown = set(data) - _KEYS
    if unknown:
        raise _bad(f"unknown key {sorted(unknown)[0]!r:.40}")
    address = data.get("address")
    if not isinstance(address, str) or not MAC.fullmatch(address):
        raise _bad(f"address must be a MAC like A4:C1:38:12:34:56, got {address!r:.40}")
    rssi = data.get("rssi")
    if isinstance(rssi, bool) or not isinstance(rssi, int) or not -127 <= rssi <= 127:
        raise _bad(f"rssi must be a whole number of dBm, got {rssi!r:.40}")
    t = json_number(data.get("t"))  # None for an integer no float holds (`1` and 400 zeros)
    if t is None or not math.isfinite(t) or t < 0:
        raise _bad(f"t must be POSIX seconds, got {data.get('t')!r:.40}")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 248):
        raise _bad("name must be text of at most 248 characters")
    if name is not None:
        name = utf8_text(name)  # a lone surrogate (JSON `"\ud83d"`) as U+FFFD, as in MQTT payloads
    service_data = {
        _uuid(k): v for k, v in _hex_map(data.get("service_data", {}), "service_data").items()
    }
    manufacturer_data = {
        _company(k): v
        for k, v in _hex_map(data.get("manufacturer_data", {}), "manufacturer_data").items()
    }
    uuids = data.get("service_uuids", [])
    if not isinstance(uuids, list) or len(uuids) > _MAX_ENTRIES:
        raise _bad("service_uuids must be a list of UUIDs")
    return Advert(
        address=address.upper(),
        rssi=rssi,
        time=t,
        name=name,
        service_data=service_data,
        manufacturer_data=manufacturer_data,
        service_uuids=tuple(_uuid(u) for u in uuids),
    )


def _hex_map(raw: object, what: str) -> dict[str, bytes]:
    if not isinstance(raw, Mapping) or len(raw) > _MAX_ENTRIES:
        raise _bad(f"{what} must be an object of at most {_MAX_ENTRIES} entries")
    out: dict[str, bytes] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or len(value) > 2 * _MAX_DATA:
            raise _bad(f"{what} values must be hex of at most {_MAX_DATA} bytes")
        try:
            out[key] = bytes.fromhex(value)
        except ValueError:
            raise _bad(f"{what}[{key!r:.40}] is not hex") from None
    return out


def _uuid(raw: object) -> str:
    if not isinstance(raw, str):
        raise _bad(f"not a UUID: {raw!r:.40}")
    try:
        return normalize_uuid(raw)
    except ValueError as err:
        raise _bad(str(err)) from None


def _company(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5 or int(raw) > 0xFFFF:
        raise _bad(f"manufacturer id must be a decimal number 0..65535, got {raw!r:.40}")
    return int(raw)


def _bad(detail: str) -> BadInputError:
    return BadInputError(BadInputReason.BAD_FRAME, detail)


__all__ = [
    "MAX_LINE",
    "Recording",
    "RecordingWriter",
    "format_advert",
    "parse_line",
    "parse_lines",
    "read_recording",
]
