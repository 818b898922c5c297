"""Simulated devices that speak MQTT exactly as the real ones do (Zigbee2MQTT and native).

`run_simulator` plays a scenario against any broker until cancelled; `homeguard-hub run --simulate`
and `homeguard-hub simulate` use it, and so do the tests.
"""

from drivers.simulator.devices import SIMULATED_DEVICES, Scenario, SimulatedDevice
from drivers.simulator.run import MOTOR_DELAY_S, run_simulator

__all__ = ["MOTOR_DELAY_S", "SIMULATED_DEVICES", "Scenario", "SimulatedDevice", "run_simulator"]
