"""The simulated devices' inner state: drift, a running dryer, a water meter, the shared world.

Pure: no I/O, no clock. Each model draws from its own seeded `random.Random`, so a seed gives the
same traffic however the device loops interleave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from drivers.simulator.devices import (
    BASEMENT_TEMP,
    BATHROOM_LEAK,
    DRYER_PLUG,
    HALL_SIREN,
    KITCHEN_LEAK,
    LIVING_CLIMATE,
    MAIN_VALVE,
    WATER_METER,
    JsonObject,
)
from drivers.simulator.payloads import (
    aqara_climate_payload,
    aqara_leak_payload,
    native_climate_payload,
    native_plug_payload,
    native_water_meter_payload,
    siren_payload,
    valve_payload,
)

#: Water escaping from the simulated kitchen leak while the main valve is open, L/min.
LEAK_FLOW_L_MIN = 2.6


@dataclass(slots=True)
class World:
    """What the devices share: the water supply and the alarm."""

    valve_open: bool = True
    leaking: bool = False
    """Water is escaping in the kitchen (it stays wet after the valve closes)."""
    siren_on: bool | None = None
    """None until the siren is first told something (Zigbee2MQTT knows no state before that)."""


class Model(Protocol):
    def report(self, world: World, dt: float) -> JsonObject:
        """Advance by `dt` seconds since the last report and return the payload to publish."""


def _walk(
    rng: random.Random, value: float, *, mean: float, step: float, lo: float, hi: float
) -> float:
    """A mean-reverting random walk, clamped: slow, believable drift."""
    value += 0.05 * (mean - value) + rng.gauss(0.0, step)
    return min(hi, max(lo, value))


def _lqi(rng: random.Random, lqi: int) -> int:
    return int(_walk(rng, lqi, mean=90, step=4, lo=15, hi=255))


@dataclass(slots=True)
class LeakSensor:
    rng: random.Random
    at_the_leak: bool
    """This sensor sits where the simulated leak happens."""
    linkquality: int = 87
    device_temperature: float = 24.0
    power_outage_count: int = 5

    def report(self, world: World, dt: float) -> JsonObject:
        self.linkquality = _lqi(self.rng, self.linkquality)
        self.device_temperature = _walk(
            self.rng, self.device_temperature, mean=23.5, step=0.2, lo=15, hi=35
        )
        return aqara_leak_payload(
            water_leak=self.at_the_leak and world.leaking,
            battery=100,
            voltage_mv=3005,
            device_temperature=round(self.device_temperature),
            power_outage_count=self.power_outage_count,
            linkquality=self.linkquality,
        )


@dataclass(slots=True)
class Valve:
    rng: random.Random
    linkquality: int = 120

    def report(self, world: World, dt: float) -> JsonObject:
        self.linkquality = _lqi(self.rng, self.linkquality)
        return valve_payload(is_open=world.valve_open, linkquality=self.linkquality)


@dataclass(slots=True)
class Siren:
    rng: random.Random
    linkquality: int = 140

    def report(self, world: World, dt: float) -> JsonObject:
        self.linkquality = _lqi(self.rng, self.linkquality)
        return siren_payload(sounding=world.siren_on, battery=100, linkquality=self.linkquality)


@dataclass(slots=True)
class AqaraClimate:
    rng: random.Random
    temperature: float = 21.6
    humidity: float = 46.0
    pressure_hpa: float = 1013.2
    linkquality: int = 102

    def report(self, world: World, dt: float) -> JsonObject:
        rng = self.rng
        self.temperature = _walk(rng, self.temperature, mean=21.5, step=0.05, lo=15, hi=30)
        self.humidity = _walk(rng, self.humidity, mean=45, step=0.3, lo=25, hi=75)
        self.pressure_hpa = _walk(rng, self.pressure_hpa, mean=1013, step=0.1, lo=980, hi=1040)
        self.linkquality = _lqi(rng, self.linkquality)
        return aqara_climate_payload(
            temperature=self.temperature,
            humidity=self.humidity,
            pressure_hpa=self.pressure_hpa,
            battery=100,
            voltage_mv=3025,
            linkquality=self.linkquality,
        )


@dataclass(slots=True)
class NativeClimate:
    rng: random.Random
    temperature: float = 13.5
    humidity: float = 64.0
    battery: int = 93

    def report(self, world: World, dt: float) -> JsonObject:
        self.temperature = _walk(self.rng, self.temperature, mean=13.5, step=0.05, lo=5, hi=25)
        self.humidity = _walk(self.rng, self.humidity, mean=64, step=0.3, lo=40, hi=90)
        return native_climate_payload(
            temperature=self.temperature, humidity=self.humidity, battery=self.battery
        )


@dataclass(slots=True)
class WaterMeter:
    """Near zero most of the time; now and then a tap, a flush or a shower for a few reports."""

    rng: random.Random
    static_pressure: float = 3.4
    burst_flow: float = 0.0
    burst_reports_left: int = 0

    def report(self, world: World, dt: float) -> JsonObject:
        rng = self.rng
        if self.burst_reports_left > 0:
            self.burst_reports_left -= 1
        elif rng.random() < 0.08:
            self.burst_flow = rng.uniform(4.0, 10.0)
            self.burst_reports_left = rng.randint(1, 4)
        else:
            self.burst_flow = 0.0
        flow = 0.0
        if world.valve_open:
            flow = self.burst_flow + (LEAK_FLOW_L_MIN if world.leaking else 0.0)
            flow = max(0.0, flow + rng.gauss(0.0, 0.05)) if flow else 0.0
        self.static_pressure = _walk(rng, self.static_pressure, mean=3.4, step=0.01, lo=2.5, hi=4)
        return native_water_meter_payload(flow=flow, pressure=self.static_pressure - 0.04 * flow)


@dataclass(slots=True)
class DryerPlug:
    """A tumble dryer: standby, or a run of heater cycles; the energy counter only goes up."""

    rng: random.Random
    energy_kwh: float = 412.37
    voltage: float = 230.0
    reports_left_running: int = 0

    def report(self, world: World, dt: float) -> JsonObject:
        rng = self.rng
        if self.reports_left_running > 0:
            self.reports_left_running -= 1
        elif rng.random() < 0.03:
            self.reports_left_running = rng.randint(20, 60)
        running = self.reports_left_running > 0
        heater_on = running and rng.random() < 0.75
        power = rng.uniform(0.6, 0.9)
        if running:
            power = rng.uniform(180.0, 230.0) + (rng.uniform(1900.0, 2200.0) if heater_on else 0)
        self.voltage = _walk(rng, self.voltage, mean=230.0, step=0.6, lo=215, hi=245)
        self.energy_kwh += power * max(0.0, dt) / 3_600_000
        return native_plug_payload(power=power, voltage=self.voltage, energy=self.energy_kwh)


def build_models(seed: int | None) -> dict[str, Model]:
    """One model per simulated device id, each with its own generator derived from `seed`."""

    def rng(device_id: str) -> random.Random:
        return random.Random(f"{seed}:{device_id}") if seed is not None else random.Random()

    return {
        KITCHEN_LEAK.id: LeakSensor(rng(KITCHEN_LEAK.id), at_the_leak=True),
        BATHROOM_LEAK.id: LeakSensor(rng(BATHROOM_LEAK.id), at_the_leak=False, linkquality=64),
        MAIN_VALVE.id: Valve(rng(MAIN_VALVE.id)),
        HALL_SIREN.id: Siren(rng(HALL_SIREN.id)),
        LIVING_CLIMATE.id: AqaraClimate(rng(LIVING_CLIMATE.id)),
        BASEMENT_TEMP.id: NativeClimate(rng(BASEMENT_TEMP.id)),
        WATER_METER.id: WaterMeter(rng(WATER_METER.id)),
        DRYER_PLUG.id: DryerPlug(rng(DRYER_PLUG.id)),
    }
