"""Serial devices: Eastron SDM meters over Modbus RTU, DSMR P1 smart meters, JSON-lines sensors.

`drivers.serial.service.SerialService` runs one task per configured port. The decoders are pure
(`sdm.decode_registers`, `dsmr.decode_telegram`, `json_lines.decode_line`): bytes or registers in,
a `Decoded` out. What is shared by all of them lives here:

* `bridge_id(port)`: the id of a port's `Availability` events (`serial:/dev/ttyUSB0`);
* `Sample`: one decoded value, tagged with the phase it belongs to;
* `Router`: how samples become `Reading`s of a configured device. A single-phase meter reports
  everything on its own id. A three-phase meter (SDM630; a DSMR telegram with L2 or L3 values)
  reports its totals (power, energy, frequency, power failures) on its own id and each phase's
  voltage, current, power, sags and swells on `<id>-l1`, `<id>-l2`, `<id>-l3`, announced once with
  a `DeviceDiscovered` so the store knows them;
* `Presence`: `Availability` only when it changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from drivers.mqtt.adapter import Sink
from hub.errors import BadInputError
from hub.events import Availability, DeviceDiscovered, Reading, Value
from hub.measurements import Measurement

__all__ = [
    "Decoded",
    "Presence",
    "Router",
    "Sample",
    "bridge_id",
    "phase_device_id",
]


def bridge_id(port: str) -> str:
    """The device id of a serial port itself, e.g. `serial:/dev/ttyUSB0`."""
    return f"serial:{port}"


def phase_device_id(device_id: str, phase: int) -> str:
    """The id one phase of a three-phase meter reports on: `<id>-l1` .. `<id>-l3`."""
    return f"{device_id}-l{phase}"


class Sample(NamedTuple):
    """One decoded value. `phase` 0 is the meter as a whole; 1..3 are its phases (L1..L3)."""

    measurement: Measurement
    value: Value
    phase: int = 0


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a frame, telegram, line or register set held: good values, and values refused."""

    samples: tuple[Sample, ...]
    refused: tuple[BadInputError, ...] = ()


class Presence:
    """Emits `Availability` for a device only when its state changes (the first one always)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._state: dict[str, bool] = {}

    def set(self, device_id: str, online: bool, at: float) -> None:
        if self._state.get(device_id) is not online:
            self._state[device_id] = online
            self._sink.emit(Availability(device_id, online, at))

    def online(self, device_id: str) -> bool | None:
        return self._state.get(device_id)


class Router:
    """Turns a device's decoded samples into readings, per the phase rule in the module doc."""

    def __init__(
        self, sink: Sink, device_id: str, adapter: str, name: str, model: str | None
    ) -> None:
        self._sink = sink
        self.device_id = device_id
        self._adapter = adapter
        self._name = name
        self._model = model
        self._announced: set[str] = set()

    def emit(self, decoded: Decoded, at: float) -> int:
        """Emit the readings and refusals in `decoded`; returns how many readings went out."""
        for err in decoded.refused:
            self._sink.refuse(f"{self._adapter} {self.device_id}", err)
        self._announce(decoded.samples, at)
        count = 0
        for device_id, measurement, value in self.route(decoded.samples):
            self._sink.emit(Reading(device_id, measurement, value, at))
            count += 1
        return count

    def route(self, samples: Iterable[Sample]) -> list[tuple[str, Measurement, Value]]:
        samples = list(samples)
        if _three_phase(samples):
            return [(self._id(s.phase), s.measurement, s.value) for s in samples]
        whole = {s.measurement for s in samples if s.phase == 0}
        return [
            (self.device_id, s.measurement, s.value)
            for s in samples
            if s.phase == 0 or (s.phase == 1 and s.measurement not in whole)
        ]

    def _id(self, phase: int) -> str:
        return self.device_id if phase == 0 else phase_device_id(self.device_id, phase)

    def _announce(self, samples: Iterable[Sample], at: float) -> None:
        samples = list(samples)
        if not _three_phase(samples):
            return
        for phase in (1, 2, 3):
            device_id = phase_device_id(self.device_id, phase)
            exposes = tuple(sorted({s.measurement.value for s in samples if s.phase == phase}))
            if exposes and device_id not in self._announced:
                self._announced.add(device_id)
                self._sink.emit(
                    DeviceDiscovered(
                        device_id, self._adapter, f"{self._name} L{phase}", self._model, exposes, at
                    )
                )


def _three_phase(samples: list[Sample]) -> bool:
    return any(s.phase >= 2 for s in samples)
