"""Eastron SDM120 / SDM220 / SDM630 register profiles and their decoder (pure: registers in).

Source: Eastron's Modbus protocol documents for the SDM120-Modbus, SDM220-Modbus and SDM630-Modbus
V2 ("input registers", function code 04). Each parameter is an IEEE 754 FLOAT32 in two registers,
high word first (pymodbus' `word_order="big"`); the register address is the parameter number
(3xxxx) minus 30001:

==========  ======================  =====  ========================================
address     parameter               unit   models
==========  ======================  =====  ========================================
0x0000      phase 1 voltage (L-N)   V      all (SDM120/220: the voltage)
0x0002/4    phase 2/3 voltage       V      SDM630
0x0006      phase 1 current         A      all (SDM120/220: the current)
0x0008/A    phase 2/3 current       A      SDM630
0x000C      phase 1 active power    W      all (SDM120/220: the active power)
0x000E/10   phase 2/3 active power  W      SDM630
0x0034      total system power      W      SDM630
0x0046      frequency               Hz     all
0x0156      total active energy     kWh    all (import + export; the meter's main total)
==========  ======================  =====  ========================================

The reads are small contiguous blocks that hold only documented registers (SDM120s answer an
undocumented address with exception 02). A single-phase model reports everything on the meter;
the SDM630 reports its totals on the meter and V/A/W per phase (see `drivers.serial.Router`).
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient

from drivers.mqtt.payload import number
from drivers.serial import Decoded, Sample
from hub.errors import BadInputError, BadInputReason
from hub.measurements import Measurement

__all__ = ["PROFILES", "Block", "Field", "Profile", "decode_registers"]

_FLOAT32 = AsyncModbusSerialClient.DATATYPE.FLOAT32


@dataclass(frozen=True, slots=True)
class Field:
    """One FLOAT32 parameter: its first register and what it measures."""

    address: int
    measurement: Measurement
    phase: int = 0


@dataclass(frozen=True, slots=True)
class Block:
    """One `read_input_registers` request."""

    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Profile:
    model: str
    blocks: tuple[Block, ...]
    fields: tuple[Field, ...]


V, A, W = Measurement.VOLTAGE, Measurement.CURRENT, Measurement.POWER
_SINGLE_PHASE_FIELDS = (
    Field(0x0000, V),
    Field(0x0006, A),
    Field(0x000C, W),
    Field(0x0046, Measurement.FREQUENCY),
    Field(0x0156, Measurement.ENERGY),
)
_SINGLE_PHASE_BLOCKS = (Block(0x0000, 14), Block(0x0046, 2), Block(0x0156, 2))

PROFILES: dict[str, Profile] = {
    "SDM120": Profile("SDM120", _SINGLE_PHASE_BLOCKS, _SINGLE_PHASE_FIELDS),
    "SDM220": Profile("SDM220", _SINGLE_PHASE_BLOCKS, _SINGLE_PHASE_FIELDS),
    "SDM630": Profile(
        "SDM630",
        (Block(0x0000, 18), Block(0x0034, 2), Block(0x0046, 2), Block(0x0156, 2)),
        (
            *(Field(0x0000 + 2 * i, V, i + 1) for i in range(3)),
            *(Field(0x0006 + 2 * i, A, i + 1) for i in range(3)),
            *(Field(0x000C + 2 * i, W, i + 1) for i in range(3)),
            Field(0x0034, W),
            Field(0x0046, Measurement.FREQUENCY),
            Field(0x0156, Measurement.ENERGY),
        ),
    ),
}


def decode_registers(profile: Profile | str, registers: Mapping[int, int]) -> Decoded:
    """The profile's values found in `registers` (address → 16-bit value).

    A parameter whose registers were not read is skipped; one that is not a finite number in its
    plausible range is refused (NOT_FINITE / OUT_OF_RANGE), and the others still count.
    """
    if isinstance(profile, str):
        profile = PROFILES[profile]
    samples: list[Sample] = []
    refused: list[BadInputError] = []
    for field in profile.fields:
        high, low = registers.get(field.address), registers.get(field.address + 1)
        if high is None or low is None:
            continue
        try:
            value = _float32(high, low)
            samples.append(Sample(field.measurement, number(field.measurement, value), field.phase))
        except BadInputError as err:
            refused.append(
                BadInputError(err.reason, f"register 0x{field.address:04X}: {err.detail}")
            )
    return Decoded(tuple(samples), tuple(refused))


def _float32(high: int, low: int) -> float:
    if not (0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF):
        raise BadInputError(BadInputReason.BAD_FRAME, f"{high}, {low} are not 16-bit registers")
    value = AsyncModbusSerialClient.convert_from_registers([high, low], _FLOAT32)
    if not isinstance(value, float):  # pragma: no cover  (FLOAT32 always converts to one float)
        raise BadInputError(BadInputReason.WRONG_TYPE, f"not a FLOAT32: {value!r:.40}")
    return _shortest(value)


def _shortest(value: float) -> float:
    """The shortest decimal that is the same FLOAT32 (230.1, not 230.10000610351562)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if array.array("f", [candidate])[0] == value:
            return candidate
    return value  # pragma: no cover  (9 significant digits always round-trip a FLOAT32)
