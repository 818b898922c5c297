"""What each simulated device says, and how it reads a command. Pure: no I/O, no clock, no globals.

Payload builders take plain values and return the JSON object the real device (through
Zigbee2MQTT, or our native DIY format) would publish; command parsers turn a `/set` payload into
what the device will do.
"""

from __future__ import annotations

import json

from drivers.simulator.devices import JsonObject, JsonValue


def encode(payload: JsonValue) -> bytes:
    """Compact JSON with sorted keys, as Zigbee2MQTT writes it."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# --- payload builders ---------------------------------------------------------------------------


def aqara_leak_payload(
    *,
    water_leak: bool,
    battery: int,
    voltage_mv: int,
    device_temperature: int,
    power_outage_count: int,
    linkquality: int,
) -> JsonObject:
    """Aqara SJCGQ11LM through Zigbee2MQTT."""
    return {
        "battery": battery,
        "battery_low": battery <= 20,
        "device_temperature": device_temperature,
        "linkquality": linkquality,
        "power_outage_count": power_outage_count,
        "tamper": False,
        "voltage": voltage_mv,
        "water_leak": water_leak,
    }


def valve_payload(*, is_open: bool, linkquality: int) -> JsonObject:
    """A Zigbee water valve through Zigbee2MQTT: `ON` is open, `OFF` is closed."""
    return {"linkquality": linkquality, "state": "ON" if is_open else "OFF"}


def siren_payload(*, sounding: bool | None, battery: int, linkquality: int) -> JsonObject:
    """Heiman HS2WD-E through Zigbee2MQTT; `state` appears once it has been commanded."""
    out: JsonObject = {"battery": battery, "linkquality": linkquality}
    if sounding is not None:
        out["state"] = "ON" if sounding else "OFF"
    return out


def aqara_climate_payload(
    *,
    temperature: float,
    humidity: float,
    pressure_hpa: float,
    battery: int,
    voltage_mv: int,
    linkquality: int,
) -> JsonObject:
    """Aqara WSDCGQ11LM through Zigbee2MQTT."""
    return {
        "battery": battery,
        "humidity": round(humidity, 2),
        "linkquality": linkquality,
        "pressure": round(pressure_hpa, 1),
        "temperature": round(temperature, 2),
        "voltage": voltage_mv,
    }


def native_climate_payload(*, temperature: float, humidity: float, battery: int) -> JsonObject:
    """Native: °C, %, %."""
    return {
        "battery": battery,
        "humidity": round(humidity, 1),
        "temperature": round(temperature, 2),
    }


def native_water_meter_payload(*, flow: float, pressure: float) -> JsonObject:
    """Native: flow in L/min, pressure in bar."""
    return {"flow": round(flow, 2), "pressure": round(pressure, 2)}


def native_plug_payload(*, power: float, voltage: float, energy: float) -> JsonObject:
    """Native: W, V, A (derived), kWh."""
    current = power / voltage if voltage > 0 else 0.0
    return {
        "current": round(current, 3),
        "energy": round(energy, 3),
        "power": round(power, 1),
        "voltage": round(voltage, 1),
    }


# --- commands -----------------------------------------------------------------------------------


def _requested_state(payload: bytes) -> str | None:
    """`{"state": "off"}` or a bare `OFF` → `"OFF"`; None when the payload names no state."""
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        data = data.get("state")
    return data.upper() if isinstance(data, str) and data else None


def valve_target(payload: bytes, *, is_open: bool) -> bool | None:
    """A valve `/set` payload → the wanted position (True = open); None if it asks nothing."""
    match _requested_state(payload):
        case "ON":
            return True
        case "OFF":
            return False
        case "TOGGLE":
            return not is_open
        case _:
            return None


def siren_target(payload: bytes) -> bool | None:
    """A siren `/set` payload → sound (True) or silence (False); None if it asks nothing.

    `{"warning": {...}}` sounds it unless its mode is `stop`; `{"state": "ON"|"OFF"}` also works.
    """
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(warning := data.get("warning"), dict):
        mode = warning.get("mode", "emergency")
        return not (isinstance(mode, str) and mode.lower() == "stop")
    match _requested_state(payload):
        case "ON":
            return True
        case "OFF":
            return False
        case _:
            return None
