"""Home Assistant discovery: device classes and units, what is ignored, what is refused, values
and availability. Configs here are written in the documented shape (HA's MQTT sensor and binary
sensor pages: `stat_t`, `dev_cla`, `unit_of_meas`, `avty`...); captured ones are in
`test_ha_discovery.py`."""

from __future__ import annotations

import pytest

from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Reading
from hub.measurements import Measurement as M
from tests.ha_support import adapter, config


@pytest.mark.parametrize(
    ("component", "device_class", "unit", "state", "expected"),
    [
        ("sensor", "power", "kW", b"1.2", (M.POWER, 1200.0)),
        ("sensor", "power", "W", b"-35", (M.POWER, -35.0)),
        ("sensor", "voltage", "mV", b"3012", (M.VOLTAGE, 3.012)),
        ("sensor", "current", "mA", b"250", (M.CURRENT, 0.25)),
        ("sensor", "energy", "Wh", b"1234", (M.ENERGY, 1.234)),
        ("sensor", "energy", "kWh", b"12.5", (M.ENERGY, 12.5)),
        ("sensor", "temperature", "°F", b"212", (M.TEMPERATURE, 100.0)),
        ("sensor", "temperature", "K", b"273.15", (M.TEMPERATURE, 0.0)),
        ("sensor", "pressure", "hPa", b"1013.2", (M.AIR_PRESSURE, 1013.2)),
        ("sensor", "pressure", "inHg", b"29.92", (M.AIR_PRESSURE, 29.92 * 33.86388667)),
        ("sensor", "pressure", "bar", b"2.1", (M.PRESSURE, 2.1)),
        ("sensor", "pressure", "psi", b"30", (M.PRESSURE, 30 * 0.0689475729)),
        ("sensor", "pressure", "kPa", b"150", (M.PRESSURE, 1.5)),
        ("sensor", "battery", "%", b"87", (M.BATTERY, 87.0)),
        ("sensor", "frequency", "Hz", b"50.02", (M.FREQUENCY, 50.02)),
        ("sensor", "volume_flow_rate", "m³/h", b"0.6", (M.FLOW, 10.0)),
        ("binary_sensor", "problem", None, b"ON", (M.PROBLEM, True)),
        ("binary_sensor", "battery", None, b"OFF", (M.BATTERY_LOW, False)),
        ("binary_sensor", "smoke", None, b"ON", (M.SMOKE, True)),
        ("binary_sensor", "window", None, b"ON", (M.CONTACT, True)),
        ("binary_sensor", "occupancy", None, b"OFF", (M.MOTION, False)),
        ("binary_sensor", "tamper", None, b"ON", (M.TAMPER, True)),
        ("binary_sensor", "vibration", None, b"ON", (M.VIBRATION, True)),
    ],
)
def test_device_classes_and_units(
    component: str, device_class: str, unit: str | None, state: bytes, expected: tuple[M, object]
) -> None:
    ha, sink, _ = adapter()
    extra = {} if unit is None else {"unit_of_meas": unit}
    ha.decode(f"homeassistant/{component}/x/config", config(dev_cla=device_class, **extra), 1.0)
    ha.decode("home/x/state", state, 2.0)
    reading = sink.events[-1]
    assert isinstance(reading, Reading)
    assert reading.measurement is expected[0]
    assert reading.value == pytest.approx(expected[1])
    assert sink.refused == []


@pytest.mark.parametrize(
    ("component", "fields"),
    [
        ("sensor", {"dev_cla": "moisture", "unit_of_meas": "%"}),  # soil moisture, not a leak
        ("sensor", {"dev_cla": "signal_strength", "unit_of_meas": "dBm"}),
        ("sensor", {"unit_of_meas": "°C"}),  # no device class
        ("sensor", {"dev_cla": "temperature", "unit_of_meas": "°C", "ent_cat": "diagnostic"}),
        ("binary_sensor", {"dev_cla": "light"}),
        ("switch", {"dev_cla": "outlet"}),
        ("button", {"dev_cla": "restart"}),
    ],
)
def test_entities_the_hub_does_not_read_are_ignored_and_counted(
    component: str, fields: dict[str, object]
) -> None:
    ha, sink, subscribed = adapter()
    ha.decode(f"homeassistant/{component}/x/config", config(**fields), 1.0)
    assert (sink.events, sink.refused, subscribed, ha.ignored) == ([], [], [], 1)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("homeassistant/sensor/x/config", b"{nope", BadInputReason.MALFORMED_JSON),
        ("homeassistant/sensor/x/config", b"[1]", BadInputReason.NOT_AN_OBJECT),
        ("homeassistant/sensor/x/config", b" " * 70000, BadInputReason.TOO_LARGE),
        ("homeassistant/sensor/bad id!/config", config(), BadInputReason.BAD_TOPIC),
        ("homeassistant/sensor/x/config", config(stat_t="home/+/state", dev_cla="power", unit_of_meas="W"), BadInputReason.BAD_TOPIC),
        ("homeassistant/sensor/x/config", config(stat_t=None, dev_cla="power", unit_of_meas="W"), BadInputReason.WRONG_TYPE),
        ("homeassistant/sensor/x/config", config(dev_cla="power", unit_of_meas="hp"), BadInputReason.UNSUPPORTED),
        ("homeassistant/sensor/x/config", config(dev_cla="temperature"), BadInputReason.UNSUPPORTED),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="gas"), BadInputReason.UNSUPPORTED),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="carbon_monoxide"), BadInputReason.UNSUPPORTED),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="moisture", val_tpl="{{ value_json.a + 1 }}"), BadInputReason.UNSUPPORTED),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="moisture", pl_on=[1]), BadInputReason.WRONG_TYPE),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="moisture", avty_mode="some"), BadInputReason.WRONG_TYPE),
        ("homeassistant/binary_sensor/x/config", config(dev_cla="moisture", avty=[{"t": f"a/{n}"} for n in range(9)]), BadInputReason.TOO_LARGE),
        ("homeassistant/device/x/config", config(), BadInputReason.WRONG_TYPE),
        ("somewhere/else", b"{}", BadInputReason.UNKNOWN_DEVICE),
    ],
)  # fmt: skip
def test_bad_configs_are_refused(topic: str, payload: bytes, reason: BadInputReason) -> None:
    ha, sink, subscribed = adapter()
    with pytest.raises(BadInputError) as err:
        ha.decode(topic, payload, 1.0)
    assert err.value.reason is reason
    assert (sink.events, subscribed) == ([], [])


def test_state_values_refused_or_skipped_one_entity_at_a_time() -> None:
    ha, sink, _ = adapter()
    ha.decode(
        "homeassistant/binary_sensor/leak/config",
        config(uniq_id="leak", dev_cla="moisture", val_tpl="{{ value_json.leak }}"),
        1.0,
    )
    ha.decode(
        "homeassistant/sensor/temp/config",
        config(uniq_id="temp", dev_cla="temperature", unit_of_meas="°C", val_tpl="{{ value_json.t | float }}"),
        1.0,
    )  # fmt: skip
    states = [
        b'{"leak": "ON", "t": "19.5"}',  # both read; "19.5" | float
        b'{"leak": "MAYBE", "t": 500}',  # neither payload; out of range
        b'{"t": "unknown"}',  # no leak key: skipped; "unknown" | float cannot convert
        b'{"leak": null, "t": null}',  # JSON null: no value for the binary sensor
        b"not json",
        b'{"leak": "unavailable"}',
    ]
    for n, state in enumerate(states):
        ha.decode("home/x/state", state, 10.0 + n)
    assert [e for e in sink.events if isinstance(e, Reading)] == [
        Reading("ha-leak", M.WATER_LEAK, True, 10.0),
        Reading("ha-temp", M.TEMPERATURE, 19.5, 10.0),
    ]
    assert sink.refused == [
        ("ha-leak", BadInputReason.WRONG_TYPE),
        ("ha-temp", BadInputReason.OUT_OF_RANGE),
        ("ha-temp", BadInputReason.WRONG_TYPE),
        ("ha-temp", BadInputReason.WRONG_TYPE),  # float of null
        ("ha-leak", BadInputReason.MALFORMED_JSON),
        ("ha-temp", BadInputReason.MALFORMED_JSON),
    ]
    with pytest.raises(BadInputError) as err:
        ha.decode("home/x/state", b"{}" + b" " * 70000, 20.0)
    assert err.value.reason is BadInputReason.TOO_LARGE


def test_availability_payloads_and_modes() -> None:
    ha, sink, _ = adapter()
    ha.decode(
        "homeassistant/binary_sensor/x/config",
        config(dev_cla="moisture", avty=[{"t": "dev/a"}, {"t": "dev/b", "pl_avail": "up", "pl_not_avail": "down"}], avty_mode="any"),
        1.0,
    )  # fmt: skip
    ha.decode("dev/b", b"down", 2.0)
    ha.decode("dev/a", b"online", 3.0)
    ha.decode("dev/a", b"offline", 4.0)
    ha.decode("dev/b", b"up", 5.0)
    ha.decode("dev/b", b"sideways", 6.0)
    assert [e for e in sink.events if isinstance(e, Availability)] == [
        Availability("ha-x1", False, 2.0),
        Availability("ha-x1", True, 3.0),  # mode "any": one topic online is enough
        Availability("ha-x1", False, 4.0),  # both offline ("down" is dev/b's own word for it)
        Availability("ha-x1", True, 5.0),
    ]
    assert sink.refused == [("ha-x1", BadInputReason.WRONG_TYPE)]
