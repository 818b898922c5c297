"""The libraries' entities (sensor-state-data's `SensorUpdate`) → the hub's measurements.

Sensors map by device class, with the unit converted to the measurement's fixed unit; binary
sensors by device class. What has no measurement (signal strength, packet id, illuminance, button
events...) is left out silently; a measurement in a unit with no conversion is refused as
`UNSUPPORTED`, and every value goes through `measurement_value`'s type and range checks.
"""

from __future__ import annotations

from decimal import Decimal

from sensor_state_data import BinarySensorDeviceClass as Binary
from sensor_state_data import SensorDeviceClass as Sensor
from sensor_state_data import SensorUpdate

from drivers.mqtt.payload import measurement_value
from hub.errors import BadInputError, BadInputReason
from hub.events import Reading
from hub.measurements import Measurement

_SENSORS: dict[str, Measurement] = {
    Sensor.TEMPERATURE: Measurement.TEMPERATURE,
    Sensor.HUMIDITY: Measurement.HUMIDITY,
    Sensor.BATTERY: Measurement.BATTERY,
    Sensor.PRESSURE: Measurement.AIR_PRESSURE,  # BLE sensors report air pressure (hPa/mbar)
    Sensor.POWER: Measurement.POWER,
    Sensor.VOLTAGE: Measurement.VOLTAGE,
    Sensor.CURRENT: Measurement.CURRENT,
    Sensor.ENERGY: Measurement.ENERGY,
    Sensor.VOLUME_FLOW_RATE: Measurement.FLOW,
    Sensor.FREQUENCY: Measurement.FREQUENCY,
}
_BINARY: dict[str, Measurement] = {
    Binary.MOISTURE: Measurement.WATER_LEAK,
    Binary.SMOKE: Measurement.SMOKE,
    Binary.OPENING: Measurement.CONTACT,  # True = open, as the vocabulary says
    Binary.DOOR: Measurement.CONTACT,
    Binary.WINDOW: Measurement.CONTACT,
    Binary.GARAGE_DOOR: Measurement.CONTACT,
    Binary.MOTION: Measurement.MOTION,
    Binary.OCCUPANCY: Measurement.MOTION,
    Binary.VIBRATION: Measurement.VIBRATION,
    Binary.TAMPER: Measurement.TAMPER,
    Binary.BATTERY: Measurement.BATTERY_LOW,  # the battery binary sensor is on when low
    Binary.PROBLEM: Measurement.PROBLEM,
}
#: (measurement, the library's unit) → factor to the measurement's fixed unit.
_SCALE: dict[tuple[Measurement, str | None], float] = {
    (Measurement.TEMPERATURE, "°C"): 1.0,
    (Measurement.HUMIDITY, "%"): 1.0,
    (Measurement.BATTERY, "%"): 1.0,
    (Measurement.AIR_PRESSURE, "hPa"): 1.0,
    (Measurement.AIR_PRESSURE, "mbar"): 1.0,
    (Measurement.AIR_PRESSURE, "kPa"): 10.0,
    (Measurement.AIR_PRESSURE, "Pa"): 0.01,
    (Measurement.POWER, "W"): 1.0,
    (Measurement.POWER, "kW"): 1000.0,
    (Measurement.VOLTAGE, "V"): 1.0,
    (Measurement.VOLTAGE, "mV"): 0.001,
    (Measurement.CURRENT, "A"): 1.0,
    (Measurement.CURRENT, "mA"): 0.001,
    (Measurement.ENERGY, "kWh"): 1.0,
    (Measurement.ENERGY, "Wh"): 0.001,
    (Measurement.FLOW, "m³/h"): 1000.0 / 60.0,  # to L/min
    (Measurement.FREQUENCY, "Hz"): 1.0,
}


def has_values(update: SensorUpdate) -> bool:
    """Whether the update holds anything that would become a reading."""
    sensors = update.entity_descriptions.values()
    binaries = update.binary_entity_descriptions.values()
    return any(d.device_class in _SENSORS for d in sensors) or any(
        d.device_class in _BINARY for d in binaries
    )


def to_readings(
    device_id: str, update: SensorUpdate, at: float
) -> tuple[list[Reading], list[BadInputError]]:
    """The entities that are measurements, as readings; the first entity of each measurement wins
    (a device with two thermometers reports `temperature_1` and `temperature_2`)."""
    readings: list[Reading] = []
    errors: list[BadInputError] = []
    seen: set[Measurement] = set()
    for key, sensor in update.entity_values.items():
        description = update.entity_descriptions.get(key)
        if description is None or description.device_class is None:
            continue
        measurement = _SENSORS.get(description.device_class)
        if measurement is None or measurement in seen or sensor.native_value is None:
            continue
        seen.add(measurement)
        unit = description.native_unit_of_measurement
        try:
            scale = _SCALE.get((measurement, unit))
            if scale is None:
                raise BadInputError(
                    BadInputReason.UNSUPPORTED, f"{measurement.value} in {unit!s:.20}"
                )
            value = _scaled(sensor.native_value, scale)
            readings.append(
                Reading(device_id, measurement, measurement_value(measurement, value), at)
            )
        except BadInputError as err:
            errors.append(err)
    for key, binary in update.binary_entity_values.items():
        binary_description = update.binary_entity_descriptions.get(key)
        if binary_description is None or binary_description.device_class is None:
            continue
        measurement = _BINARY.get(binary_description.device_class)
        if measurement is None or measurement in seen or binary.native_value is None:
            continue
        seen.add(measurement)
        try:
            flag = measurement_value(measurement, binary.native_value)
        except BadInputError as err:
            errors.append(err)
            continue
        readings.append(Reading(device_id, measurement, flag, at))
    return readings, errors


def _scaled(raw: object, scale: float) -> object:
    """`raw` in the measurement's unit; what is not a number is left for `measurement_value` to
    refuse with the right reason (as is a number too large to scale)."""
    if isinstance(raw, Decimal):
        raw = float(raw)
    if scale == 1.0 or isinstance(raw, bool) or not isinstance(raw, int | float):
        return raw
    try:
        return round(raw * scale, 6)
    except OverflowError:
        return raw


__all__ = ["has_values", "to_readings"]
