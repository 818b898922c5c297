"""DSMR P1 smart meters: a byte stream split into telegrams, each decoded by dsmr-parser.

The port: 115200 8N1 (DSMR 4 and 5, the default); a configured `baudrate = 9600` means a DSMR 2.2 /
3.0 meter, which talks 9600 7E1.

Framing (`TelegramFramer`): a telegram runs from `/` to the `!CRC` line; anything else between
telegrams (other than line ends and NULs) is refused as BAD_FRAME, as is a telegram cut short by
the next `/`, one over `MAX_TELEGRAM_BYTES` (TOO_LARGE) or one whose CRC fails. The next good
telegram decodes regardless. A telegram with a CRC is parsed with dsmr-parser's V5 specification
(its objects below read the same in V4); one without (DSMR 2.2 / 3) with the V2_2 specification
and no integrity check, on a 9600-baud port only (on a DSMR 4 / 5 port a telegram whose CRC
digits were lost is refused). Only the objects the hub reads are parsed, so a vendor's odd line elsewhere
(M-Bus, the power-failure log, text messages) cannot spoil a telegram.

What a telegram becomes (values are stamped with the hub's clock at arrival, not the meter's):

* power (W) = 1.7.0 delivered to the home - 2.7.0 returned by it, kW x 1000: negative when
  exporting;
* energy (kWh) = 1.8.1 + 1.8.2 (delivered to the home, tariffs 1 and 2; 1.8.0 when a meter only
  gives the total);
* power_failures = 96.7.21 (short) + 96.7.9 (long), the meter's counts of failures in any phase;
* per phase Lx: voltage (32/52/72.7.0), current (31/51/71.7.0), power (21.7.0 - 22.7.0, ...),
  voltage_sags (32/52/72.32.0), voltage_swells (32/52/72.36.0). A telegram with L2 or L3 values
  is a three-phase meter: its phases report on `<id>-l1` .. `<id>-l3` (see `drivers.serial`);
  a single-phase meter reports its L1 values on its own id.
"""

from __future__ import annotations

import functools
import logging
import re
from decimal import Decimal
from typing import Any

from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.parsers import TelegramParser

from drivers.mqtt.adapter import Sink
from drivers.mqtt.payload import number
from drivers.serial import Decoded, Sample
from drivers.serial.port import PortSettings
from drivers.serial.stream_device import StreamDevice
from hub.errors import BadInputError, BadInputReason
from hub.measurements import Measurement

__all__ = [
    "DEFAULT_BAUDRATE",
    "MAX_TELEGRAM_BYTES",
    "SILENT_AFTER_S",
    "DsmrMeter",
    "TelegramFramer",
    "decode_telegram",
    "needs_crc",
    "port_settings",
]

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 115200
#: A DSMR 4 / 2.2 meter sends a telegram every 10 s, a DSMR 5 one every second: 3 missed is silence.
SILENT_AFTER_S = 30.0
#: Real telegrams are 0.5-2.5 KB (a Belgian one with 13 months of peaks is the largest seen).
MAX_TELEGRAM_BYTES = 8192
#: After `!`: up to 4 hex digits, an optional NUL (some meters), CR LF.
_TAIL = re.compile(rb"!([0-9A-Fa-f]{0,4})\x00?\r\n")
_MAX_TAIL = 8
_BLANK = b" \t\r\n\x00"

P, V, A = Measurement.POWER, Measurement.VOLTAGE, Measurement.CURRENT
_KILO: dict[str | None, Decimal] = {"kW": Decimal(1000), "W": Decimal(1)}
_ENERGY: dict[str | None, Decimal] = {"kWh": Decimal(1), "Wh": Decimal("0.001")}
_UNITS: dict[Measurement, dict[str | None, Decimal]] = {
    P: _KILO,
    Measurement.ENERGY: _ENERGY,
    V: {"V": Decimal(1)},
    A: {"A": Decimal(1)},
    Measurement.POWER_FAILURES: {None: Decimal(1)},
    Measurement.VOLTAGE_SAGS: {None: Decimal(1)},
    Measurement.VOLTAGE_SWELLS: {None: Decimal(1)},
}

#: (measurement, phase, objects added up, objects subtracted); the first rule that finds any of
#: its added objects in a telegram gives the value.
_RULES: tuple[tuple[Measurement, int, tuple[str, ...], tuple[str, ...]], ...] = (
    (P, 0, ("CURRENT_ELECTRICITY_USAGE",), ("CURRENT_ELECTRICITY_DELIVERY",)),
    (Measurement.ENERGY, 0, ("ELECTRICITY_USED_TARIFF_1", "ELECTRICITY_USED_TARIFF_2"), ()),
    (Measurement.ENERGY, 0, ("ELECTRICITY_IMPORTED_TOTAL",), ()),
    (Measurement.POWER_FAILURES, 0, ("SHORT_POWER_FAILURE_COUNT", "LONG_POWER_FAILURE_COUNT"), ()),
    *(
        rule
        for n in (1, 2, 3)
        for rule in (
            (V, n, (f"INSTANTANEOUS_VOLTAGE_L{n}",), ()),
            (A, n, (f"INSTANTANEOUS_CURRENT_L{n}",), ()),
            (
                P,
                n,
                (f"INSTANTANEOUS_ACTIVE_POWER_L{n}_POSITIVE",),
                (f"INSTANTANEOUS_ACTIVE_POWER_L{n}_NEGATIVE",),
            ),
            (Measurement.VOLTAGE_SAGS, n, (f"VOLTAGE_SAG_L{n}_COUNT",), ()),
            (Measurement.VOLTAGE_SWELLS, n, (f"VOLTAGE_SWELL_L{n}_COUNT",), ()),
        )
    ),
)
_READ = frozenset(name for _, _, plus, minus in _RULES for name in (*plus, *minus))


def _only_what_we_read(spec: dict[str, Any]) -> dict[str, Any]:
    objects = [o for o in spec["objects"] if o["value_name"] in _READ]
    return {"checksum_support": spec["checksum_support"], "objects": objects}


_WITH_CRC = TelegramParser(_only_what_we_read(telegram_specifications.V5))
_WITHOUT_CRC = TelegramParser(
    _only_what_we_read(telegram_specifications.V2_2), apply_checksum_validation=False
)


#: The fastest rate of a DSMR 2.2 / 3 port (7E1, telegrams without a CRC); DSMR 4 / 5 run above it.
DSMR3_MAX_BAUDRATE = 9600


def needs_crc(settings: PortSettings) -> bool:
    """Whether telegrams on this port carry a CRC: DSMR 4 / 5 ones always do."""
    return settings.baudrate > DSMR3_MAX_BAUDRATE


def port_settings(port: str, baudrate: int | None) -> PortSettings:
    """115200 8N1 by default; 9600 (or slower) is a DSMR 2.2 / 3 port: 7E1."""
    rate = baudrate or DEFAULT_BAUDRATE
    if rate <= DSMR3_MAX_BAUDRATE:
        return PortSettings(port, rate, bytesize=7, parity="E")
    return PortSettings(port, rate)


def decode_telegram(text: str, *, crc_required: bool = True) -> Decoded:
    """The readings in one telegram (`/` .. `!CRC\\r\\n`). Raises `BadInputError` (BAD_FRAME)
    when the whole telegram is refused: a CRC mismatch, a line dsmr-parser cannot parse, or
    nothing the hub reads; and, with `crc_required` (a DSMR 4 / 5 port), a telegram without a
    CRC: line noise that took the CRC digits must not become a reading unchecked. Only a DSMR
    2.2 / 3 port (9600 baud or slower) takes telegrams without one."""
    tail = text.rfind("!")
    crc = text[tail + 1 :].strip("\r\n\x00") if tail != -1 else ""
    if not crc and crc_required:
        raise BadInputError(
            BadInputReason.BAD_FRAME, "telegram without a CRC on a DSMR 4/5 port (above 9600 baud)"
        )
    parser = _WITH_CRC if crc else _WITHOUT_CRC
    try:
        telegram = parser.parse(text, throw_ex=True)
    except InvalidChecksumError:
        raise BadInputError(
            BadInputReason.BAD_FRAME, f"telegram CRC {crc!r:.8} does not match"
        ) from None
    except ParseError as err:
        raise BadInputError(BadInputReason.BAD_FRAME, f"telegram: {err}"[:200]) from None
    except Exception as err:  # noqa: BLE001  (dsmr-parser re-raises whatever a value parser raised)
        raise BadInputError(BadInputReason.BAD_FRAME, f"telegram: {err!r}"[:200]) from None
    samples: list[Sample] = []
    refused: list[BadInputError] = []
    done: set[tuple[Measurement, int]] = set()
    for measurement, phase, plus, minus in _RULES:
        if (measurement, phase) in done:
            continue
        present = [getattr(telegram, name) for name in plus if hasattr(telegram, name)]
        if not present:
            continue
        done.add((measurement, phase))
        subtracted = [getattr(telegram, name) for name in minus if hasattr(telegram, name)]
        try:
            total = sum((_scaled(measurement, o) for o in present), Decimal(0))
            total -= sum((_scaled(measurement, o) for o in subtracted), Decimal(0))
            samples.append(Sample(measurement, _checked(measurement, total), phase))
        except ArithmeticError:  # decimal's Overflow / InvalidOperation (a signalling NaN)
            too_big = BadInputError(BadInputReason.OUT_OF_RANGE, "beyond what a number holds")
            refused.append(_where(measurement, phase, too_big))
        except BadInputError as err:
            refused.append(_where(measurement, phase, err))
    if not samples and not refused:
        raise BadInputError(BadInputReason.BAD_FRAME, "telegram holds no value the hub reads")
    return Decoded(tuple(samples), tuple(refused))


def _where(measurement: Measurement, phase: int, err: BadInputError) -> BadInputError:
    where = f" L{phase}" if phase else ""
    return BadInputError(err.reason, f"{measurement.value}{where}: {err.detail}")


def _scaled(measurement: Measurement, obj: Any) -> Decimal:
    value, unit = obj.value, obj.unit
    scale = _UNITS[measurement].get(unit)
    if scale is None:
        raise BadInputError(BadInputReason.WRONG_TYPE, f"unexpected unit {unit!r:.12}")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadInputError(BadInputReason.WRONG_TYPE, f"not a number: {value!r:.40}")
    return Decimal(value) * scale


def _checked(measurement: Measurement, value: Decimal) -> float:
    try:
        as_float = float(value)
    except ValueError:  # a signalling NaN
        raise BadInputError(BadInputReason.NOT_FINITE, f"{value!r:.40}") from None
    return number(measurement, as_float)


class TelegramFramer:
    """Splits a byte stream into telegram texts; what is not a telegram comes out as an error.

    Bounded: at most `max_bytes` are held while a telegram is incomplete.
    """

    def __init__(self, max_bytes: int = MAX_TELEGRAM_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self._in_junk = False  # a run of stray bytes was refused already (across feeds)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete telegram held for the next `feed`."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self._in_junk = False

    def feed(self, data: bytes) -> list[str | BadInputError]:
        buf = self._buf
        buf += data
        out: list[str | BadInputError] = []
        while True:
            start = buf.find(b"/")
            if start == -1:
                self._stray(buf, out)
                buf.clear()
                return out
            if start:
                self._stray(buf[:start], out)
                del buf[:start]
            self._in_junk = False
            bang = buf.find(b"!", 1)
            again = buf.find(b"/", 1)
            if again != -1 and (bang == -1 or again < bang):
                out.append(_bad(f"telegram cut short after {again} bytes"))
                del buf[:again]
                continue
            if bang == -1:
                if len(buf) > self._max:
                    out.append(_too_large(len(buf), self._max))
                    buf.clear()
                return out
            eol = buf.find(b"\n", bang, bang + _MAX_TAIL + 1)
            if eol == -1:
                if len(buf) - bang > _MAX_TAIL:  # not a checksum line: drop up to the '!'
                    out.append(_bad("no line end after the telegram's '!'"))
                    del buf[: bang + 1]
                    continue
                return out
            frame = bytes(buf[: eol + 1])
            del buf[: eol + 1]
            if len(frame) > self._max:
                out.append(_too_large(len(frame), self._max))
            elif not _TAIL.fullmatch(frame, bang):
                out.append(_bad(f"bad checksum line {frame[bang:][:12]!r}"))
            else:
                out.append(frame.decode("latin-1"))  # a non-ASCII byte then fails the CRC

    def _stray(self, data: bytes | bytearray, out: list[str | BadInputError]) -> None:
        """Bytes outside a telegram: a run of them (line ends and NULs aside) is refused once."""
        junk = len(data.translate(None, _BLANK))
        if junk and not self._in_junk:
            out.append(_bad(f"{junk}+ stray bytes between telegrams"))
            self._in_junk = True


def _bad(detail: str) -> BadInputError:
    return BadInputError(BadInputReason.BAD_FRAME, detail)


def _too_large(size: int, limit: int) -> BadInputError:
    return BadInputError(BadInputReason.TOO_LARGE, f"telegram of {size}+ bytes (limit {limit})")


class DsmrMeter(StreamDevice[str]):
    """One P1 port's meter: telegrams in, readings, refusals and its availability out."""

    adapter = "dsmr"

    def __init__(
        self,
        device_id: str,
        name: str,
        sink: Sink,
        silent_after_s: float = SILENT_AFTER_S,
        *,
        crc_required: bool = True,
    ) -> None:
        """`crc_required`: False only on a DSMR 2.2 / 3 port (see `needs_crc`)."""
        decode = functools.partial(decode_telegram, crc_required=crc_required)
        super().__init__(device_id, name, sink, TelegramFramer(), decode)
        self.silent_after_s = silent_after_s
