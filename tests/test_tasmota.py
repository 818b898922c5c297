"""The Tasmota adapter: captured payloads in, whole readings out; commands; refusals.

Payload sources (console captures as posted, topics renamed to our test devices):

* ENERGY of a Sonoff POW, `tele/.../SENSOR`: arendst/Tasmota issue #1621.
* AM2301, `tele/%topic%/SENSOR`: tasmota.github.io/docs/AM2301.
* SI7021 + BME280 (English firmware 5.10): ioBroker/ioBroker.sonoff issue #15.
* DS18B20-1/-2 + BMP280 with `PressureUnit` mmHg (Tasmota 13.3): ioBroker/ioBroker.sonoff issue #351.
* Two-relay `stat/aquarium/RESULT`, `{"POWER2":"OFF"}`, `stat/aquarium/POWER2 = OFF`:
  arendst/Tasmota issue #14295.
* Single-relay state (the `StatusSTS` object of `STATUS 11`, which has `tele/.../STATE`'s fields):
  arendst/Tasmota issue #6608.
* `tele/<topic>/LWT` `Online` / `Offline`: Tasmota's Home Assistant discovery config
  (`avty_t`, `pl_avail`, `pl_not_avail`) in pastebin.com/XiaKgnUt.

The °F payload is the AM2301 document's example with `TempUnit` set to `F` (SetOption8 1): a
constructed payload, not a capture.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.mqtt.tasmota import TasmotaAdapter
from hub.config import DeviceConfig, parse_config
from hub.errors import BadInputError, BadInputReason, ConfigError
from hub.events import Availability, Command, CommandAction, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink
from tests.fuzz_support import SETTINGS, decode_only_refuses, json_values

POW_ENERGY = (
    b'{"Time":"2018-01-17T18:59:50","ENERGY":{"Total":1.956,"Yesterday":0.054,"Today":0.049,'
    b'"Period":0,"Power":9,"Factor":0.43,"Voltage":231,"Current":0.089}}'
)
AM2301 = (
    b'{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"TempUnit":"C"}'
)
SI7021_BME280 = (
    b'{"Time":"2018-01-04T06:55:26","SI7021":{"Temperature":7.5,"Humidity":81.5},'
    b'"BME280":{"Temperature":8.2,"Humidity":76.7,"Pressure":993.2},"TempUnit":"C"}'
)
DS18B20_BMP280_MMHG = (
    b'{"Time":"2024-02-25T11:27:00","DS18B20-1":{"Id":"3C01D0756611","Temperature":21.125},'
    b'"DS18B20-2":{"Id":"3C01E076647F","Temperature":20.438},'
    b'"BMP280":{"Temperature":28.520,"Pressure":753.3},'
    b'"Shutter1":{"Position":50,"Direction":0,"Target":50,"Tilt":0},'
    b'"TERMOSENSORS":{"TOP":21.125,"BOTTOM":20.438},"PressureUnit":"mmHg","TempUnit":"C"}'
)
AQUARIUM_RESULT = (
    b'{"Time":"2022-01-05T14:50:25","Uptime":"0T01:25:26","UptimeSec":5126,"Heap":26,'
    b'"SleepMode":"Normal","Sleep":0,"LoadAvg":999,"MqttCount":1,"POWER1":"OFF","Dimmer1":67,'
    b'"POWER2":"OFF","Dimmer2":67,"Color":"3838ABAB00","HSBColor":"240,67,67","White":67,"CT":153,'
    b'"Channel":[22,22,67,67,0],"Scheme":0,"Fade":"ON","Speed":1,"LedTable":"ON",'
    b'"Wifi":{"AP":1,"SSId":"kiot","BSSId":"60:A4:4C:DC:B2:23","Channel":9,"Mode":"11n",'
    b'"RSSI":56,"Signal":-72,"LinkCount":1,"Downtime":"0T00:00:04"}}'
)
H801_STATE = (
    b'{"Time":"2019-10-13T11:29:46","Uptime":"0T00:00:35","Heap":14,"SleepMode":"Dynamic",'
    b'"Sleep":50,"LoadAvg":24,"POWER":"ON","Dimmer":100,"Color":"1A1A1AFFFF","HSBColor":"0,0,10",'
    b'"Channel":[10,10,10,100,100],"CT":327,"Scheme":0,"Fade":"OFF","Speed":1,"LedTable":"ON",'
    b'"Wifi":{"AP":1,"SSId":"dims","BSSId":"B4:FB:E4:44:09:D2","Channel":8,"RSSI":88,'
    b'"LinkCount":1,"Downtime":"0T00:00:04"}}'
)

DEVICES = [
    DeviceConfig(id="washer-plug", adapter="tasmota", name="tasmota_A1B2C3", role="power_cut"),
    DeviceConfig(id="hall-climate", adapter="tasmota", name="tasmota_C11A7E"),
    DeviceConfig(id="main-valve", adapter="tasmota", name="aquarium#1", role="water_valve"),
    DeviceConfig(id="hall-siren", adapter="tasmota", name="aquarium#2", role="siren"),
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
]


def _adapter() -> tuple[TasmotaAdapter, Sink]:
    sink = Sink()
    return TasmotaAdapter(DEVICES, sink, 65536), sink


def _readings(sink: Sink) -> list[tuple[str, M, object]]:
    return [(e.device_id, e.measurement, e.value) for e in sink.events if isinstance(e, Reading)]


# -- telemetry --------------------------------------------------------------------------------


def test_sonoff_pow_energy() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_A1B2C3/SENSOR", POW_ENERGY, 10.0)
    assert sink.events == [
        Reading("washer-plug", M.POWER, 9.0, 10.0),
        Reading("washer-plug", M.VOLTAGE, 231.0, 10.0),
        Reading("washer-plug", M.CURRENT, 0.089, 10.0),
        Reading("washer-plug", M.ENERGY, 1.956, 10.0),
    ]
    assert sink.refused == []


def test_am2301_temperature_and_humidity() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_C11A7E/SENSOR", AM2301, 1.0)
    assert sink.events == [
        Reading("hall-climate", M.TEMPERATURE, 24.6, 1.0),
        Reading("hall-climate", M.HUMIDITY, 58.2, 1.0),
    ]


def test_si7021_and_bme280_each_give_readings_in_payload_order() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_C11A7E/SENSOR", SI7021_BME280, 1.0)
    assert _readings(sink) == [
        ("hall-climate", M.TEMPERATURE, 7.5),
        ("hall-climate", M.HUMIDITY, 81.5),
        ("hall-climate", M.TEMPERATURE, 8.2),
        ("hall-climate", M.HUMIDITY, 76.7),
        ("hall-climate", M.AIR_PRESSURE, 993.2),
    ]
    assert sink.refused == []


def test_ds18b20_pair_and_pressure_in_mmhg_become_hpa() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_C11A7E/SENSOR", DS18B20_BMP280_MMHG, 1.0)
    readings = _readings(sink)
    assert readings[:3] == [
        ("hall-climate", M.TEMPERATURE, 21.125),
        ("hall-climate", M.TEMPERATURE, 20.438),
        ("hall-climate", M.TEMPERATURE, 28.52),
    ]
    assert readings[3][:2] == ("hall-climate", M.AIR_PRESSURE)
    assert readings[3][2] == pytest.approx(1004.32, abs=0.01)  # 753.3 mmHg
    assert len(readings) == 4  # Shutter1 and the TERMOSENSORS rule output are not sensors
    assert sink.refused == []


def test_fahrenheit_is_converted_to_celsius() -> None:
    adapter, sink = _adapter()
    payload = b'{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":76.3,"Humidity":58.2},'
    adapter.decode("tele/tasmota_C11A7E/SENSOR", payload + b'"TempUnit":"F"}', 1.0)
    (temperature, humidity) = _readings(sink)
    assert temperature[:2] == ("hall-climate", M.TEMPERATURE)
    assert temperature[2] == pytest.approx(24.61, abs=0.01)
    assert humidity == ("hall-climate", M.HUMIDITY, 58.2)


def test_esp32_die_temperature_is_not_a_room_temperature() -> None:
    adapter, sink = _adapter()
    payload = b'{"Time":"2024-01-01T12:00:00","ESP32":{"Temperature":52.8},"TempUnit":"C"}'
    adapter.decode("tele/tasmota_C11A7E/SENSOR", payload, 1.0)
    assert sink.events == []
    assert sink.refused == []


def test_per_channel_energy_is_indexed_by_relay() -> None:
    adapter, sink = _adapter()
    payload = b'{"ENERGY":{"Total":3.5,"Power":[12,340],"Voltage":230,"Current":[0.05,1.48]}}'
    adapter.decode("tele/aquarium/SENSOR", payload, 1.0)
    assert _readings(sink) == [
        ("main-valve", M.POWER, 12.0),
        ("main-valve", M.VOLTAGE, 230.0),
        ("main-valve", M.CURRENT, 0.05),
        ("main-valve", M.ENERGY, 3.5),
        ("hall-siren", M.POWER, 340.0),
        ("hall-siren", M.VOLTAGE, 230.0),
        ("hall-siren", M.CURRENT, 1.48),
        ("hall-siren", M.ENERGY, 3.5),
    ]


# -- relay state ------------------------------------------------------------------------------


def test_single_relay_state_is_a_switch() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_A1B2C3/STATE", H801_STATE, 1.0)
    assert sink.events == [Reading("washer-plug", M.SWITCH, True, 1.0)]


def test_two_relays_valve_and_siren_from_state_result_and_power() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/aquarium/STATE", AQUARIUM_RESULT, 1.0)
    adapter.decode("stat/aquarium/RESULT", b'{"POWER1":"ON"}', 2.0)
    adapter.decode("stat/aquarium/POWER1", b"ON", 2.0)
    adapter.decode("stat/aquarium/RESULT", b'{"POWER2":"ON"}', 3.0)
    adapter.decode("stat/aquarium/POWER2", b"ON", 3.0)
    adapter.decode("stat/aquarium/RESULT", b'{"Wakeup":"Started"}', 4.0)
    assert sink.events == [
        Reading("main-valve", M.VALVE, "closed", 1.0),
        Reading("hall-siren", M.SWITCH, False, 1.0),
        Reading("main-valve", M.VALVE, "open", 2.0),
        Reading("main-valve", M.VALVE, "open", 2.0),
        Reading("hall-siren", M.SWITCH, True, 3.0),
        Reading("hall-siren", M.SWITCH, True, 3.0),
    ]
    assert sink.refused == []


def test_bare_power_read_back() -> None:
    adapter, sink = _adapter()
    adapter.decode("stat/tasmota_A1B2C3/POWER", b"OFF", 5.0)
    assert sink.events == [Reading("washer-plug", M.SWITCH, False, 5.0)]


def test_bad_relay_value_is_refused_per_key() -> None:
    adapter, sink = _adapter()
    adapter.decode("stat/aquarium/RESULT", b'{"POWER1":"AN","POWER2":"OFF"}', 1.0)
    assert sink.events == [Reading("hall-siren", M.SWITCH, False, 1.0)]
    assert sink.refused == [("main-valve", BadInputReason.WRONG_TYPE)]


# -- availability -----------------------------------------------------------------------------


def test_lwt_availability_for_every_relay_of_the_topic() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_A1B2C3/LWT", b"Offline", 1.0)
    adapter.decode("tele/aquarium/LWT", b"Online", 2.0)
    assert sink.events == [
        Availability("washer-plug", False, 1.0),
        Availability("main-valve", True, 2.0),
        Availability("hall-siren", True, 2.0),
    ]
    with pytest.raises(BadInputError) as info:
        adapter.decode("tele/aquarium/LWT", b"Maybe", 3.0)
    assert info.value.reason is BadInputReason.WRONG_TYPE


# -- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_id", "action", "topic", "payload"),
    [
        ("main-valve", CommandAction.CLOSE_VALVE, "cmnd/aquarium/POWER", b"OFF"),
        ("hall-siren", CommandAction.SIREN_ON, "cmnd/aquarium/POWER2", b"ON"),
        ("washer-plug", CommandAction.CUT_POWER, "cmnd/tasmota_A1B2C3/POWER", b"OFF"),
        ("washer-plug", CommandAction.READ_STATE, "cmnd/tasmota_A1B2C3/POWER", b""),
        ("hall-siren", CommandAction.READ_STATE, "cmnd/aquarium/POWER2", b""),
    ],
)
def test_commands(device_id: str, action: CommandAction, topic: str, payload: bytes) -> None:
    adapter, _ = _adapter()
    assert adapter.controls(device_id)
    (out,) = adapter.encode(Command("c1", device_id, action, 1.0))
    assert (out.topic, out.payload, out.qos, out.retain) == (topic, payload, 1, False)


# -- topics -----------------------------------------------------------------------------------


def test_filters_and_ownership() -> None:
    adapter, sink = _adapter()
    assert adapter.filters() == (
        "tele/tasmota_A1B2C3/+",
        "stat/tasmota_A1B2C3/+",
        "tele/tasmota_C11A7E/+",
        "stat/tasmota_C11A7E/+",
        "tele/aquarium/+",
        "stat/aquarium/+",
    )
    assert adapter.owns("tele/aquarium/SENSOR")
    assert adapter.owns("stat/tasmota_A1B2C3/RESULT")
    assert not adapter.owns("cmnd/aquarium/POWER")  # our own commands
    assert not adapter.owns("tele/tasmota_FFFFFF/SENSOR")  # another Tasmota on the broker
    assert not adapter.owns("tele/aquarium")
    assert not adapter.owns("zigbee2mqtt/Kitchen Leak")
    assert not adapter.controls("kitchen-leak")
    for leaf in ("INFO1", "UPGRADE", "STATUS11", "HASS_STATE"):
        adapter.decode(f"tele/aquarium/{leaf}", b"{not json", 1.0)
        adapter.decode(f"stat/aquarium/{leaf}", b"{not json", 1.0)
    assert sink.events == []
    with pytest.raises(BadInputError) as info:
        adapter.decode("tele/tasmota_FFFFFF/SENSOR", POW_ENERGY, 1.0)
    assert info.value.reason is BadInputReason.UNKNOWN_DEVICE


@pytest.mark.parametrize("name", ["tasmota#0", "tasmota#33", "tasmota#x", "#2", "a/+/b", "a/"])
def test_unusable_names_are_config_errors(name: str) -> None:
    # Refused when the file is read (with its line), and by the adapter should one get through.
    with pytest.raises(ConfigError, match=r"devices\[0\]\.name: a tasmota name is"):
        parse_config({"devices": [{"id": "d", "adapter": "tasmota", "name": name}]})
    with pytest.raises(ConfigError):
        TasmotaAdapter(
            [DeviceConfig.model_construct(id="d", adapter="tasmota", name=name)], Sink(), 1024
        )


# -- bad input --------------------------------------------------------------------------------


def test_a_number_json_does_not_allow_is_refused_alone() -> None:
    adapter, sink = _adapter()
    adapter.decode("tele/tasmota_A1B2C3/SENSOR", b'{"ENERGY":{"Power":NaN,"Voltage":230}}', 1.0)
    assert sink.events == [Reading("washer-plug", M.VOLTAGE, 230.0, 1.0)]
    assert sink.refused == [("washer-plug", BadInputReason.NOT_FINITE)]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("tele/tasmota_A1B2C3/SENSOR", b'{"ENERGY":{"Power": 9', BadInputReason.MALFORMED_JSON),
        ("tele/tasmota_A1B2C3/SENSOR", b"[1,2]", BadInputReason.NOT_AN_OBJECT),
        ("tele/tasmota_A1B2C3/STATE", b'"ON"', BadInputReason.NOT_AN_OBJECT),
        ("stat/tasmota_A1B2C3/RESULT", b"x" * 70000, BadInputReason.TOO_LARGE),
        ("stat/tasmota_A1B2C3/POWER", b"x" * 70000, BadInputReason.TOO_LARGE),
        ("tele/tasmota_A1B2C3/LWT", b"x" * 70000, BadInputReason.TOO_LARGE),
        ("stat/tasmota_A1B2C3/POWER", b"TOGGLE", BadInputReason.WRONG_TYPE),
    ],
)
def test_whole_payload_refusals(topic: str, payload: bytes, reason: BadInputReason) -> None:
    adapter, _ = _adapter()
    with pytest.raises(BadInputError) as info:
        adapter.decode(topic, payload, 1.0)
    assert info.value.reason is reason


def test_sensor_values_refused_per_key_and_the_rest_kept() -> None:
    adapter, sink = _adapter()
    huge = "9" * 400  # a JSON integer float() cannot hold
    payload = (
        '{"ENERGY":{"Total":-1,"Power":"120","Voltage":' + huge + ',"Current":[1,2]},'
        '"AM2301":{"Temperature":21.3,"Humidity":145},'
        '"BME280":{"Temperature":20.0,"Pressure":1013.0},"PressureUnit":"psi","TempUnit":"C"}'
    )
    adapter.decode("tele/tasmota_A1B2C3/SENSOR", payload.encode(), 1.0)
    assert _readings(sink) == [
        ("washer-plug", M.CURRENT, 1.0),  # relay 1 of a per-channel list
        ("washer-plug", M.TEMPERATURE, 21.3),
        ("washer-plug", M.TEMPERATURE, 20.0),
    ]
    assert sorted(r for _, r in sink.refused) == sorted(
        [
            BadInputReason.OUT_OF_RANGE,  # Total -1
            BadInputReason.WRONG_TYPE,  # Power as a string
            BadInputReason.OUT_OF_RANGE,  # Voltage of 400 digits
            BadInputReason.OUT_OF_RANGE,  # Humidity 145
            BadInputReason.WRONG_TYPE,  # pressure in psi
        ]
    )


def test_unknown_temperature_unit_is_refused() -> None:
    adapter, sink = _adapter()
    adapter.decode(
        "tele/tasmota_C11A7E/SENSOR", b'{"DS18B20":{"Temperature":290},"TempUnit":"K"}', 1
    )
    assert sink.events == []
    assert sink.refused == [("hall-climate", BadInputReason.WRONG_TYPE)]


# -- property: nothing but BadInputError escapes decode, and every reading is in the vocabulary -


_TOPICS = [
    f"{prefix}/{topic}/{leaf}"
    for topic in ("tasmota_A1B2C3", "aquarium")
    for prefix, leaf in [
        ("tele", "SENSOR"),
        ("tele", "STATE"),
        ("tele", "LWT"),
        ("tele", "INFO1"),
        ("stat", "RESULT"),
        ("stat", "POWER"),
        ("stat", "POWER1"),
        ("stat", "POWER2"),
        ("stat", "STATUS10"),
    ]
]

_KEYS = st.sampled_from(
    [
        "ENERGY", "Total", "Power", "Voltage", "Current", "AM2301", "DS18B20", "BME280", "ESP32",
        "Temperature", "Humidity", "Pressure", "TempUnit", "PressureUnit", "POWER", "POWER1",
        "POWER2", "Time", "Wifi", "C", "F", "mmHg", "inHg", "hPa",
    ]
) | st.text(max_size=8)  # fmt: skip

_JSON = json_values(_KEYS, ["ON", "OFF", "on", "C", "F", "mmHg", "inHg", "hPa", "Online"])


def _check(topic: str, payload: bytes) -> None:
    sink = Sink()
    adapters = (TasmotaAdapter(DEVICES, sink, 4096),)
    decode_only_refuses(adapters, sink, topic, payload, (Reading, Availability))


@SETTINGS
@given(st.sampled_from(_TOPICS), st.binary(max_size=300))
def test_random_bytes_only_raise_bad_input(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@SETTINGS
@given(st.sampled_from(_TOPICS), _JSON)
def test_random_json_only_raises_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())


@SETTINGS
@given(st.sampled_from(_TOPICS), st.dictionaries(_KEYS, _JSON, max_size=6))
def test_random_tasmota_shaped_objects_only_raise_bad_input(topic: str, doc: object) -> None:
    _check(topic, json.dumps(doc).encode())
