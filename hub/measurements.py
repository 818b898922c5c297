"""The measurement vocabulary every driver speaks, with its fixed units.

A `Reading` carries one `Measurement`; the unit is fixed by the measurement, so it is never guessed
downstream. Booleans are `True` for the alarming or active state (wet, smoke, motion, open door...).
"""

from __future__ import annotations

import enum


class Measurement(enum.StrEnum):
    """What a reading measures. The value in parentheses in `UNITS` is the fixed unit."""

    WATER_LEAK = "water_leak"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    FLOW = "flow"
    PRESSURE = "pressure"
    AIR_PRESSURE = "air_pressure"
    POWER = "power"
    VOLTAGE = "voltage"
    CURRENT = "current"
    ENERGY = "energy"
    CONTACT = "contact"
    MOTION = "motion"
    SMOKE = "smoke"
    TILT = "tilt"
    VIBRATION = "vibration"
    TAMPER = "tamper"
    BATTERY = "battery"
    BATTERY_LOW = "battery_low"
    LINKQUALITY = "linkquality"
    VALVE = "valve"
    SWITCH = "switch"
    FREQUENCY = "frequency"
    PROBLEM = "problem"  # a device reports a fault of its own (overpower, overtemperature, ...)
    POWER_FAILURES = "power_failures"  # counters kept by a smart meter (DSMR)
    VOLTAGE_SAGS = "voltage_sags"
    VOLTAGE_SWELLS = "voltage_swells"


class ValveState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


#: Fixed unit of each measurement; `None` for booleans and states.
UNITS: dict[Measurement, str | None] = {
    Measurement.WATER_LEAK: None,
    Measurement.TEMPERATURE: "°C",
    Measurement.HUMIDITY: "%",
    Measurement.FLOW: "L/min",
    Measurement.PRESSURE: "bar",
    Measurement.AIR_PRESSURE: "hPa",
    Measurement.POWER: "W",
    Measurement.VOLTAGE: "V",
    Measurement.CURRENT: "A",
    Measurement.ENERGY: "kWh",
    Measurement.CONTACT: None,
    Measurement.MOTION: None,
    Measurement.SMOKE: None,
    Measurement.TILT: None,
    Measurement.VIBRATION: None,
    Measurement.TAMPER: None,
    Measurement.BATTERY: "%",
    Measurement.BATTERY_LOW: None,
    Measurement.LINKQUALITY: "lqi",
    Measurement.VALVE: None,
    Measurement.SWITCH: None,
    Measurement.FREQUENCY: "Hz",
    Measurement.PROBLEM: None,
    Measurement.POWER_FAILURES: "count",
    Measurement.VOLTAGE_SAGS: "count",
    Measurement.VOLTAGE_SWELLS: "count",
}

BOOLEAN: frozenset[Measurement] = frozenset(
    {
        Measurement.WATER_LEAK,
        Measurement.CONTACT,
        Measurement.MOTION,
        Measurement.SMOKE,
        Measurement.TILT,
        Measurement.VIBRATION,
        Measurement.TAMPER,
        Measurement.BATTERY_LOW,
        Measurement.SWITCH,
        Measurement.PROBLEM,
    }
)

#: Measurements whose value is one of a fixed set of strings.
STATES: dict[Measurement, frozenset[str]] = {
    Measurement.VALVE: frozenset(s.value for s in ValveState),
}

#: Plausible physical range of numeric measurements; a value outside it is bad input, not a reading.
RANGES: dict[Measurement, tuple[float, float]] = {
    Measurement.TEMPERATURE: (-60.0, 150.0),
    Measurement.HUMIDITY: (0.0, 100.0),
    Measurement.FLOW: (0.0, 1000.0),
    Measurement.PRESSURE: (0.0, 100.0),
    Measurement.AIR_PRESSURE: (300.0, 1200.0),
    Measurement.POWER: (-100_000.0, 100_000.0),
    Measurement.VOLTAGE: (0.0, 1000.0),
    Measurement.CURRENT: (-1000.0, 1000.0),
    Measurement.ENERGY: (0.0, 1e9),
    Measurement.BATTERY: (0.0, 100.0),
    Measurement.LINKQUALITY: (0.0, 255.0),
    Measurement.FREQUENCY: (0.0, 1000.0),
    Measurement.POWER_FAILURES: (0.0, 1e9),
    Measurement.VOLTAGE_SAGS: (0.0, 1e9),
    Measurement.VOLTAGE_SWELLS: (0.0, 1e9),
}
