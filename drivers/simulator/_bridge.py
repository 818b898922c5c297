"""How Zigbee2MQTT would describe the simulated Zigbee devices on `<base>/bridge/devices`.

Pure data and builders, no I/O, in Zigbee2MQTT's own format: the coordinator first, then each
device with `ieee_address`, `friendly_name`, `type`, `supported` and a `definition` whose `exposes`
say what its state payload carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.simulator.devices import (
    BATHROOM_LEAK,
    HALL_SIREN,
    KITCHEN_LEAK,
    LIVING_CLIMATE,
    MAIN_VALVE,
    JsonObject,
    JsonValue,
    zigbee_devices,
)

# --- exposes, in Zigbee2MQTT's vocabulary (access bits: 1 published, 2 settable, 4 gettable) ---


def _binary(
    prop: str, description: str, *, on: JsonValue = True, off: JsonValue = False, access: int = 1
) -> JsonObject:
    return {
        "type": "binary",
        "name": prop,
        "property": prop,
        "label": _label(prop),
        "access": access,
        "value_on": on,
        "value_off": off,
        "description": description,
    }


def _numeric(
    prop: str,
    description: str,
    *,
    unit: str | None = None,
    lo: float | None = None,
    hi: float | None = None,
    access: int = 1,
) -> JsonObject:
    out: JsonObject = {
        "type": "numeric",
        "name": prop,
        "property": prop,
        "label": _label(prop),
        "access": access,
        "description": description,
    }
    if unit is not None:
        out["unit"] = unit
    if lo is not None:
        out["value_min"] = lo
    if hi is not None:
        out["value_max"] = hi
    return out


def _enum(prop: str, description: str, values: list[JsonValue], *, access: int) -> JsonObject:
    return {
        "type": "enum",
        "name": prop,
        "property": prop,
        "label": _label(prop),
        "access": access,
        "values": values,
        "description": description,
    }


def _label(prop: str) -> str:
    return prop.replace("_", " ").capitalize()


def _linkquality() -> JsonObject:
    lqi = _numeric("linkquality", "Link quality (signal strength)", unit="lqi", lo=0, hi=255)
    lqi["category"] = "diagnostic"
    return lqi


def _battery() -> JsonObject:
    return _numeric("battery", "Remaining battery in %", unit="%", lo=0, hi=100)


def _voltage_mv() -> JsonObject:
    return _numeric("voltage", "Voltage of the battery in millivolts", unit="mV")


_LEAK_EXPOSES: list[JsonValue] = [
    _binary("water_leak", "Indicates whether the device detected a water leak"),
    _binary("battery_low", "Indicates if the battery of this device is almost empty"),
    _binary("tamper", "Indicates whether the device is tampered"),
    _battery(),
    _voltage_mv(),
    _numeric("device_temperature", "Temperature of the device", unit="°C"),
    _numeric("power_outage_count", "Number of power outages"),
    _linkquality(),
]

_VALVE_EXPOSES: list[JsonValue] = [
    {
        "type": "switch",
        "features": [
            _binary("state", "On/off state of the valve (ON = open)", on="ON", off="OFF", access=7)
        ],
    },
    _linkquality(),
]

_SIREN_EXPOSES: list[JsonValue] = [
    _battery(),
    _numeric("max_duration", "Max duration of the siren", unit="s", lo=0, hi=600, access=7),
    {
        "type": "composite",
        "name": "warning",
        "property": "warning",
        "label": "Warning",
        "access": 2,
        "features": [
            _enum(
                "mode",
                "Mode of the warning (sound effect)",
                [
                    "stop",
                    "burglar",
                    "fire",
                    "emergency",
                    "police_panic",
                    "fire_panic",
                    "emergency_panic",
                ],
                access=2,
            ),
            _enum("level", "Sound level", ["low", "medium", "high", "very_high"], access=2),
            _enum(
                "strobe_level",
                "Intensity of the strobe",
                ["low", "medium", "high", "very_high"],
                access=2,
            ),
            _binary("strobe", "Turn on/off the strobe (light) during warning", access=2),
            _numeric("strobe_duty_cycle", "Length of the flash cycle", lo=0, hi=10, access=2),
            _numeric("duration", "Duration in seconds of the alarm", unit="s", access=2),
        ],
    },
    _linkquality(),
]

_CLIMATE_EXPOSES: list[JsonValue] = [
    _battery(),
    _voltage_mv(),
    _numeric("temperature", "Measured temperature value", unit="°C"),
    _numeric("humidity", "Measured relative humidity", unit="%"),
    _numeric("pressure", "The measured atmospheric pressure", unit="hPa"),
    _linkquality(),
]


@dataclass(frozen=True, slots=True)
class _Hardware:
    ieee_address: str
    network_address: int
    type: str  # "EndDevice" | "Router"
    power_source: str
    model_id: str
    manufacturer: str
    model: str
    vendor: str
    description: str
    exposes: list[JsonValue]


_HARDWARE: dict[str, _Hardware] = {
    KITCHEN_LEAK.id: _Hardware(
        "0x00158d0004a1c3e2",
        0x3F21,
        "EndDevice",
        "Battery",
        "lumi.sensor_wleak.aq1",
        "LUMI",
        "SJCGQ11LM",
        "Aqara",
        "Water leak sensor",
        _LEAK_EXPOSES,
    ),
    BATHROOM_LEAK.id: _Hardware(
        "0x00158d0004a1d8b7",
        0x5C0A,
        "EndDevice",
        "Battery",
        "lumi.sensor_wleak.aq1",
        "LUMI",
        "SJCGQ11LM",
        "Aqara",
        "Water leak sensor",
        _LEAK_EXPOSES,
    ),
    MAIN_VALVE.id: _Hardware(
        "0xa4c138f1e2d3c4b5",
        0x7A13,
        "EndDevice",
        "Battery",
        "SWV",
        "SONOFF",
        "SWV",
        "SONOFF",
        "Zigbee smart water valve",
        _VALVE_EXPOSES,
    ),
    HALL_SIREN.id: _Hardware(
        "0x000d6f0011d2e3f4",
        0x1B44,
        "Router",
        "Mains (single phase)",
        "WarningDevice",
        "HEIMAN",
        "HS2WD-E",
        "HEIMAN",
        "Smart siren",
        _SIREN_EXPOSES,
    ),
    LIVING_CLIMATE.id: _Hardware(
        "0x00158d00045b9a10",
        0x2E90,
        "EndDevice",
        "Battery",
        "lumi.weather",
        "LUMI",
        "WSDCGQ11LM",
        "Aqara",
        "Temperature, humidity and pressure sensor",
        _CLIMATE_EXPOSES,
    ),
}

_COORDINATOR: JsonObject = {
    "ieee_address": "0x00124b0024c2a1f0",
    "type": "Coordinator",
    "network_address": 0,
    "supported": True,
    "disabled": False,
    "friendly_name": "Coordinator",
    "definition": None,
    "power_source": None,
    "interview_completed": True,
    "interviewing": False,
}


def bridge_devices() -> list[JsonValue]:
    """The payload of `<base>/bridge/devices`: the coordinator, then every Zigbee device."""
    out: list[JsonValue] = [dict(_COORDINATOR)]
    for device in zigbee_devices():
        hw = _HARDWARE[device.id]
        out.append(
            {
                "ieee_address": hw.ieee_address,
                "type": hw.type,
                "network_address": hw.network_address,
                "supported": True,
                "disabled": False,
                "friendly_name": device.name,
                "description": f"{device.location} (simulated)",
                "definition": {
                    "model": hw.model,
                    "vendor": hw.vendor,
                    "description": hw.description,
                    "exposes": list(hw.exposes),
                    "options": [],
                    "supports_ota": False,
                },
                "power_source": hw.power_source,
                "model_id": hw.model_id,
                "manufacturer": hw.manufacturer,
                "interview_completed": True,
                "interviewing": False,
            }
        )
    return out
