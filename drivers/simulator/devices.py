"""The simulated house: which devices exist, and the scenarios it can play. Pure data."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

#: A JSON value as `json.dumps` writes it.
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = dict[str, JsonValue]

ZIGBEE2MQTT: Final = "zigbee2mqtt"
NATIVE: Final = "native"


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    id: str
    """Our device id, `[A-Za-z0-9_-]`."""
    adapter: str
    """`"zigbee2mqtt"` or `"native"`."""
    name: str
    """Its name in its ecosystem: the Zigbee2MQTT friendly name; for native devices, the id."""
    location: str
    role: str | None = None
    """None, `"water_valve"` or `"siren"`."""


class Scenario(enum.StrEnum):
    NORMAL = "normal"
    """Live readings, never a leak."""
    LEAK = "leak"
    """The kitchen sensor turns wet after `leak_after_s`; the valve obeys."""
    STUCK_VALVE = "stuck-valve"
    """As LEAK, but the valve ignores every command and stays open."""

    @property
    def leaks(self) -> bool:
        return self is not Scenario.NORMAL


KITCHEN_LEAK = SimulatedDevice("kitchen-leak", ZIGBEE2MQTT, "Kitchen Leak", "kitchen")
BATHROOM_LEAK = SimulatedDevice("bathroom-leak", ZIGBEE2MQTT, "Bathroom Leak", "bathroom")
MAIN_VALVE = SimulatedDevice(
    "main-valve", ZIGBEE2MQTT, "Main Water Valve", "utility room", "water_valve"
)
HALL_SIREN = SimulatedDevice("hall-siren", ZIGBEE2MQTT, "Hall Siren", "hall", "siren")
LIVING_CLIMATE = SimulatedDevice(
    "living-climate", ZIGBEE2MQTT, "Living Room Climate", "living room"
)
BASEMENT_TEMP = SimulatedDevice("basement-temp", NATIVE, "basement-temp", "basement")
WATER_METER = SimulatedDevice("water-meter", NATIVE, "water-meter", "utility room")
DRYER_PLUG = SimulatedDevice("dryer-plug", NATIVE, "dryer-plug", "laundry")

SIMULATED_DEVICES: tuple[SimulatedDevice, ...] = (
    KITCHEN_LEAK,
    BATHROOM_LEAK,
    MAIN_VALVE,
    HALL_SIREN,
    LIVING_CLIMATE,
    BASEMENT_TEMP,
    WATER_METER,
    DRYER_PLUG,
)

#: Devices whose state Zigbee2MQTT publishes retained (its per-device `retain: true` option).
RETAINED_STATE: frozenset[str] = frozenset({KITCHEN_LEAK.id, BATHROOM_LEAK.id, MAIN_VALVE.id})


def zigbee_devices() -> tuple[SimulatedDevice, ...]:
    return tuple(d for d in SIMULATED_DEVICES if d.adapter == ZIGBEE2MQTT)


def native_devices() -> tuple[SimulatedDevice, ...]:
    return tuple(d for d in SIMULATED_DEVICES if d.adapter == NATIVE)
