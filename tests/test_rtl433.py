"""The rtl_433 adapter: captured events in, whole readings out; duplicates; neighbours; refusals.

Event sources (as posted; `id`s kept, so the test devices are named after them):

* Govee H5054 `Water Leak` x3 and `Battery Report` (`battery_ok` 0.950), rtl_433 with `-M level`:
  merbanan/rtl_433 pull request #2625.
* Govee H5054 `Button Press`, compact JSON as published on `rtl_433/<host>/events`:
  pbkhrv/rtl_433-hass-addons issue #124.
* Acurite-Tower with `-M time:unix` and `-M protocol`: arktronic/hubitat, `rtl_433/README.md`.
* Govee H5054 with `detect_wet`, Fine Offset WH55 (`alarm`, hex string `id`, `battery_ok` in steps
  of 0.2): field names from rtl_433's `src/devices/govee.c` and `src/devices/fineoffset_wh55.c`;
  the events themselves are constructed from those decoders, not captures.
* The °F and `pressure_hPa` events are constructed (Acurite-Tower's fields with `temperature_F`).
"""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.mqtt.payload import measurement_value
from drivers.mqtt.rtl433 import Rtl433Adapter
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason, ConfigError
from hub.events import Command, CommandAction, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink

TOPIC = "rtl_433/9b13b3f4-rtl433/events"

# merbanan/rtl_433 PR #2625: one leak, heard three times (the last two 1.58 s apart).
LEAK_1 = (
    b'{"time" : "2022-04-20 08:57:19.129424", "model" : "Govee-Water", "id" : 6845, '
    b'"event" : "Water Leak", "code" : "e5420404074a", "mic" : "PARITY", "mod" : "ASK", '
    b'"freq" : 433.960, "rssi" : -0.216, "snr" : 11.152, "noise" : -11.368}'
)
LEAK_2 = (
    b'{"time" : "2022-04-20 08:57:25.974699", "model" : "Govee-Water", "id" : 6845, '
    b'"event" : "Water Leak", "code" : "e5420404074a", "mic" : "PARITY", "mod" : "ASK", '
    b'"freq" : 433.919, "rssi" : -0.239, "snr" : 11.044, "noise" : -11.282}'
)
LEAK_3 = (
    b'{"time" : "2022-04-20 08:57:27.556824", "model" : "Govee-Water", "id" : 6845, '
    b'"event" : "Water Leak", "code" : "e5420404074a", "mic" : "PARITY", "mod" : "ASK", '
    b'"freq" : 433.918, "rssi" : -0.256, "snr" : 11.027, "noise" : -11.282}'
)
GOVEE_BATTERY = (
    b'{"time" : "2022-05-29 12:43:58.341224", "model" : "Govee-Water", "id" : 6845, '
    b'"battery_ok" : 0.950, "battery_mV" : 2940, "event" : "Battery Report", '
    b'"code" : "e54203a00350", "mic" : "PARITY"}'
)
# pbkhrv/rtl_433-hass-addons issue #124.
BUTTON_PRESS = (
    b'{"time":"2023-02-28 16:55:18","model":"Govee-Water","id":56948,"event":"Button Press",'
    b'"code":"218b05050750","mic":"PARITY"}'
)
LEAK_56948 = (
    b'{"time":"2023-02-28 16:56:32","model":"Govee-Water","id":56948,"event":"Water Leak",'
    b'"code":"218b04040750","mic":"PARITY"}'
)
# arktronic/hubitat rtl_433/README.md.
ACURITE_TOWER = (
    b'{"time" : "1689444701", "protocol" : 40, "model" : "Acurite-Tower", "id" : 10327, '
    b'"channel" : "A", "battery_ok" : 1, "temperature_C" : 26.500, "humidity" : 72, '
    b'"mic" : "CHECKSUM", "mod" : "ASK", "freq" : 433.932, "rssi" : -0.101, "snr" : 21.039, '
    b'"noise" : -21.140}'
)
# Constructed from the decoders' fields (see the module docstring).
GOVEE_DETECT_WET = (
    b'{"time":"2024-06-01T12:00:00Z","model":"Govee-Water","id":1080,"event":"Water Leak",'
    b'"detect_wet":1,"leak_num":0,"code":"04383200b701","mic":"CRC"}'
)
WH55_ALARM = (
    b'{"time":"2023-12-06 20:44:46","model":"Fineoffset-WH55","id":"107A4","channel":4,'
    b'"battery_ok":1.000,"raw_value":44223,"sensitivity":1,"alarm":1,"mic":"CRC"}'
)
ACURITE_F = (
    b'{"time":"2019-03-24 22:06:13","model":"Acurite-Tower","id":13982,"channel":"A",'
    b'"temperature_F":56.300,"humidity":67,"battery_low":0,"pressure_hPa":1009.5}'
)


def _device(device_id: str, name: str) -> DeviceConfig:
    # `rtl_433` is not yet one of the configuration's adapters: built without validation.
    return DeviceConfig.model_construct(
        id=device_id, adapter="rtl_433", name=name, location=None, role=None
    )


DEVICES = [
    _device("dishwasher-leak", "Govee-Water:6845"),
    _device("sink-leak", "Govee-Water:56948"),
    _device("heater-leak", "Govee-Water:1080"),
    _device("basement-leak", "Fineoffset-WH55:107A4"),
    _device("backyard", "Acurite-Tower:10327"),
    _device("fridge", "Acurite-Tower:13982"),
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
]


def _adapter(window: float = 2.0) -> tuple[Rtl433Adapter, Sink]:
    sink = Sink()
    return Rtl433Adapter(DEVICES, sink, 65536, clock_window_s=window), sink


# -- readings ---------------------------------------------------------------------------------


def test_govee_water_leak() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, LEAK_1, 100.0)
    assert sink.events == [Reading("dishwasher-leak", M.WATER_LEAK, True, 100.0)]
    assert sink.refused == []


def test_govee_button_press_is_dry_and_battery_report_is_no_water_reading() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, BUTTON_PRESS, 1.0)
    adapter.decode(TOPIC, LEAK_56948, 2.0)
    adapter.decode(TOPIC, GOVEE_BATTERY, 3.0)
    assert sink.events == [
        Reading("sink-leak", M.WATER_LEAK, False, 1.0),
        Reading("sink-leak", M.WATER_LEAK, True, 2.0),
        Reading("dishwasher-leak", M.BATTERY, 95.0, 3.0),
    ]
    assert sink.refused == []


def test_detect_wet_of_newer_rtl_433() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, GOVEE_DETECT_WET, 1.0)
    adapter.decode(TOPIC, GOVEE_DETECT_WET.replace(b'"detect_wet":1', b'"detect_wet":0'), 2.0)
    assert sink.events == [
        Reading("heater-leak", M.WATER_LEAK, True, 1.0),
        Reading("heater-leak", M.WATER_LEAK, False, 2.0),
    ]


def test_fineoffset_wh55_alarm_and_battery_level() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, WH55_ALARM, 1.0)
    assert sink.events == [
        Reading("basement-leak", M.WATER_LEAK, True, 1.0),
        Reading("basement-leak", M.BATTERY, 100.0, 1.0),
    ]


def test_acurite_tower_temperature_humidity_battery() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, ACURITE_TOWER, 7.0)
    assert sink.events == [
        Reading("backyard", M.TEMPERATURE, 26.5, 7.0),
        Reading("backyard", M.HUMIDITY, 72.0, 7.0),
        Reading("backyard", M.BATTERY_LOW, False, 7.0),
    ]
    adapter.decode(TOPIC, ACURITE_TOWER.replace(b'"battery_ok" : 1', b'"battery_ok" : 0'), 8.0)
    assert sink.events[-1] == Reading("backyard", M.BATTERY_LOW, True, 8.0)


def test_fahrenheit_is_converted_and_pressure_read() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, ACURITE_F, 1.0)
    temperature, *rest = sink.events
    assert isinstance(temperature, Reading)
    assert (temperature.device_id, temperature.measurement) == ("fridge", M.TEMPERATURE)
    assert temperature.value == pytest.approx(13.5)  # 56.3 °F
    assert rest == [
        Reading("fridge", M.HUMIDITY, 67.0, 1.0),
        Reading("fridge", M.AIR_PRESSURE, 1009.5, 1.0),
        Reading("fridge", M.BATTERY_LOW, False, 1.0),
    ]


def test_celsius_wins_over_fahrenheit() -> None:
    adapter, sink = _adapter()
    adapter.decode(
        TOPIC, b'{"model":"Acurite-Tower","id":13982,"temperature_C":5.0,"temperature_F":41}', 1.0
    )
    assert sink.events == [Reading("fridge", M.TEMPERATURE, 5.0, 1.0)]


# -- duplicates -------------------------------------------------------------------------------


def test_repeats_within_the_window_are_one_reading_and_beyond_it_are_new() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, LEAK_1, 100.0)
    adapter.decode(TOPIC, LEAK_2, 106.8)  # 6.8 s later by its own time: a new reading
    adapter.decode(TOPIC, LEAK_3, 108.4)  # 1.58 s after LEAK_2, other freq/rssi: the same one
    assert sink.events == [
        Reading("dishwasher-leak", M.WATER_LEAK, True, 100.0),
        Reading("dishwasher-leak", M.WATER_LEAK, True, 106.8),
    ]


def test_the_events_own_time_decides_not_the_hubs() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, LEAK_1, 100.0)
    adapter.decode(TOPIC, LEAK_2, 100.1)  # delivered late/batched: still 6.8 s apart on air
    assert len(sink.events) == 2


def test_without_a_parseable_time_the_hub_clock_decides() -> None:
    adapter, sink = _adapter()
    event = b'{"time":"yesterday","model":"Govee-Water","id":6845,"event":"Water Leak"}'
    adapter.decode(TOPIC, event, 10.0)
    adapter.decode(TOPIC, event, 12.0)  # exactly the window: the same transmission
    adapter.decode(TOPIC, event, 12.5)  # 2.5 s after the one that became a reading: new
    adapter.decode(TOPIC, event.replace(b'"time":"yesterday",', b""), 13.0)
    assert [e.at for e in sink.events if isinstance(e, Reading)] == [10.0, 12.5]


def test_a_different_event_inside_the_window_is_not_a_duplicate() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, BUTTON_PRESS, 1.0)
    adapter.decode(TOPIC, BUTTON_PRESS.replace(b"Button Press", b"Water Leak"), 1.1)
    adapter.decode(TOPIC, BUTTON_PRESS, 1.2)  # A, B, A: the second A repeats the first
    assert [e.value for e in sink.events if isinstance(e, Reading)] == [False, True]


def test_two_decoders_firing_on_one_frame_are_one_reading() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, ACURITE_TOWER, 1.0)
    adapter.decode(TOPIC, ACURITE_TOWER.replace(b'"protocol" : 40', b'"protocol" : 41'), 1.0)
    assert len(sink.events) == 3


def test_window_zero_keeps_only_exact_repeats_out() -> None:
    adapter, sink = _adapter(window=0.0)
    adapter.decode(TOPIC, LEAK_2, 1.0)
    adapter.decode(TOPIC, LEAK_3, 1.0)
    adapter.decode(TOPIC, LEAK_3, 1.0)
    assert len(sink.events) == 2


def test_repeats_of_an_unconfigured_device_leave_no_memory() -> None:
    adapter, sink = _adapter()
    for n in range(1000):
        adapter.decode(TOPIC, LEAK_1.replace(b"6845", str(10_000 + n).encode()), float(n))
    assert sink.events == []
    assert sink.refused == []
    assert adapter._seen == {}


# -- neighbours, topics, commands -------------------------------------------------------------


def test_unconfigured_devices_are_ignored_silently() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, LEAK_1.replace(b'"id" : 6845', b'"id" : 6846'), 1.0)
    adapter.decode(TOPIC, ACURITE_TOWER.replace(b"Acurite-Tower", b"Acurite-986"), 1.0)
    adapter.decode(TOPIC, b'{"model":"Bresser-5in1","id":"6845","wind_avg_m_s":3.2}', 1.0)
    adapter.decode(TOPIC, b'{"model":"Schrader","type":"TPMS","flags":"f0"}', 1.0)  # no id
    assert sink.events == []
    assert sink.refused == []


def test_string_ids_match_only_their_exact_form() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, WH55_ALARM.replace(b'"107A4"', b'"107a4"'), 1.0)
    adapter.decode(TOPIC, LEAK_1.replace(b'"id" : 6845', b'"id" : "6845"'), 1.0)
    assert sink.events == [Reading("dishwasher-leak", M.WATER_LEAK, True, 1.0)]


def test_filters_ownership_and_no_commands() -> None:
    adapter, _ = _adapter()
    assert adapter.name == "rtl_433"
    assert adapter.filters() == ("rtl_433/+/events",)
    assert adapter.owns(TOPIC)
    assert not adapter.owns("rtl_433/host/states")
    assert not adapter.owns("rtl_433/host/devices/Govee-Water/6845/event")
    assert not adapter.owns("rtl_433//events")
    assert not adapter.owns("zigbee2mqtt/Kitchen Leak")
    assert not adapter.controls("dishwasher-leak")
    with pytest.raises(KeyError):
        adapter.encode(Command("c1", "dishwasher-leak", CommandAction.READ_STATE, 1.0))
    with pytest.raises(BadInputError) as info:
        adapter.decode("rtl_433/host/states", b"{}", 1.0)
    assert info.value.reason is BadInputReason.BAD_TOPIC


@pytest.mark.parametrize("name", ["Govee-Water", "Govee-Water:", ":6845", " Govee-Water:1"])
def test_unusable_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        Rtl433Adapter([_device("d", name)], Sink(), 1024)


@pytest.mark.parametrize("window", [-1.0, math.inf, math.nan])
def test_unusable_windows_are_config_errors(window: float) -> None:
    with pytest.raises(ConfigError):
        Rtl433Adapter([], Sink(), 1024, clock_window_s=window)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"model":"Govee-Water","id":6845', BadInputReason.MALFORMED_JSON),
        (b"\xff\xfe", BadInputReason.MALFORMED_JSON),
        (b"[1,2]", BadInputReason.NOT_AN_OBJECT),
        (b'"Water Leak"', BadInputReason.NOT_AN_OBJECT),
        (b'{"id":6845,"event":"Water Leak"}', BadInputReason.WRONG_TYPE),
        (b'{"model":7,"id":6845}', BadInputReason.WRONG_TYPE),
        (b'{"model":"Govee-Water","id":[6845]}', BadInputReason.WRONG_TYPE),
        (b'{"model":"Govee-Water","id":true}', BadInputReason.WRONG_TYPE),
        (b"x" * 70000, BadInputReason.TOO_LARGE),
    ],
)
def test_whole_payload_refusals(payload: bytes, reason: BadInputReason) -> None:
    adapter, sink = _adapter()
    with pytest.raises(BadInputError) as info:
        adapter.decode(TOPIC, payload, 1.0)
    assert info.value.reason is reason
    assert sink.events == []


def test_a_number_json_does_not_allow_is_refused_alone_and_the_leak_kept() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, b'{"model":"Govee-Water","id":6845,"detect_wet":1,"humidity":NaN}', 1.0)
    assert sink.events == [Reading("dishwasher-leak", M.WATER_LEAK, True, 1.0)]
    assert sink.refused == [("dishwasher-leak", BadInputReason.NOT_FINITE)]


def test_bad_fields_refused_per_field_and_the_rest_kept() -> None:
    adapter, sink = _adapter()
    huge = "9" * 400
    payload = (
        '{"model":"Acurite-Tower","id":10327,"temperature_C":' + huge + ',"humidity":140,'
        '"battery_ok":2,"pressure_hPa":1013.2,"detect_wet":"yes"}'
    )
    adapter.decode(TOPIC, payload.encode(), 1.0)
    assert sink.events == [Reading("backyard", M.AIR_PRESSURE, 1013.2, 1.0)]
    assert sorted(r for _, r in sink.refused) == sorted(
        [
            BadInputReason.WRONG_TYPE,  # detect_wet "yes"
            BadInputReason.OUT_OF_RANGE,  # temperature of 400 digits
            BadInputReason.OUT_OF_RANGE,  # humidity 140
            BadInputReason.WRONG_TYPE,  # battery_ok 2
        ]
    )
    assert {s for s, _ in sink.refused} == {"backyard"}


def test_fraction_battery_out_of_range_and_bad_govee_event() -> None:
    adapter, sink = _adapter()
    adapter.decode(TOPIC, b'{"model":"Govee-Water","id":6845,"battery_ok":1.5,"event":3}', 1.0)
    assert sink.events == []
    assert sorted(sink.refused) == [
        ("dishwasher-leak", BadInputReason.OUT_OF_RANGE),
        ("dishwasher-leak", BadInputReason.WRONG_TYPE),
    ]


# -- property: nothing but BadInputError escapes decode, and every reading is in the vocabulary -


_KEYS = st.sampled_from(
    [
        "time", "model", "id", "event", "detect_wet", "alarm", "temperature_C", "temperature_F",
        "humidity", "pressure_hPa", "battery_ok", "battery_low", "mic", "rssi", "freq", "protocol",
    ]
) | st.text(max_size=8)  # fmt: skip

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        [
            "Govee-Water", "Fineoffset-WH55", "Acurite-Tower", "Water Leak", "Button Press",
            "107A4", "6845", "1689444701", "2022-04-20 08:57:19.129424", "2024-03-19T21:26:46Z",
            "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
        ]
    )
    | st.text(max_size=12)
)  # fmt: skip

_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)

_SHAPED = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["Govee-Water", "Fineoffset-WH55", "Acurite-Tower"]),
        "id": st.sampled_from([6845, 56948, 1080, "107A4", 10327, 13982]),
    },
    optional={k: _SCALARS for k in ("time", "event", "detect_wet", "alarm", "battery_ok")}
    | {k: _SCALARS for k in ("temperature_C", "temperature_F", "humidity", "pressure_hPa")}
    | {"battery_low": _SCALARS},
)


def _check(adapter: Rtl433Adapter, sink: Sink, payload: bytes) -> None:
    with contextlib.suppress(BadInputError):
        adapter.decode(TOPIC, payload, 1.0)
    for event in sink.events:
        assert isinstance(event, Reading)
        assert measurement_value(event.measurement, event.value) == event.value
        assert not isinstance(event.value, float) or math.isfinite(event.value)


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_bad_input(payload: bytes) -> None:
    sink = Sink()
    _check(Rtl433Adapter(DEVICES, sink, 4096), sink, payload)


@_SETTINGS
@given(_JSON)
def test_random_json_only_raises_bad_input(doc: object) -> None:
    sink = Sink()
    _check(Rtl433Adapter(DEVICES, sink, 4096), sink, json.dumps(doc).encode())


@_SETTINGS
@given(st.lists(_SHAPED, min_size=1, max_size=5))
def test_random_events_of_configured_devices_only_raise_bad_input(docs: list[object]) -> None:
    sink = Sink()
    adapter = Rtl433Adapter(DEVICES, sink, 4096)
    for doc in docs:
        _check(adapter, sink, json.dumps(doc).encode())
