"""The Shelly Gen2+ adapter decodes captured payloads into whole lists of events.

Payload sources (Shelly's Gen2+ API documentation, shelly-api-docs.shelly.cloud):

* `SWITCH_STATUS`: the `Switch.GetStatus` / `status/switch:0` example of a Plus 1PM
  (gen2/ComponentsAndServices/Switch, "Status" and "Examples"; the same object is quoted in
  Shelly's own script examples: `"temperature": {"tF": 121.1, "tC": 49.5}`, `"aenergy":
  {"minute_ts": 1632600459, "by_minute": [0, 0, 0], "total": 0.134}`, `"voltage": 238.215`);
* `NOTIFY_STATUS` / `NOTIFY_EVENT`: the frame format of gen2/General/Notifications and
  gen2/General/RPCProtocol (`src`, `dst`, `method`, `params` with `ts` and `"switch:0": {...}`);
* `EM_STATUS`, `EM1_STATUS`, `PM1_STATUS`: the status examples of gen2/ComponentsAndServices/EM
  (Pro 3EM), EM1 (Pro EM) and PM1 (Plus PM Mini); the EM1 values are a Pro EM's `em1:1` as
  posted in Jan200101/ShellyPy issue 20;
* `GET_STATUS_REPLY`: the response frame of gen2/General/RPCProtocol (`id`, `src`, `dst`,
  `result`) carrying a `Switch.GetStatus` result;
* the MQTT topics and the bare `true` / `false` on `<prefix>/online`: gen2/ComponentsAndServices/Mqtt.

Field values the docs do not give (a loaded relay, error lists) were filled in by hand in the
documented shape; the comments say which.
"""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.mqtt.shelly import ShellyAdapter, parse_name
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, CommandAction, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink

PLUS = "shellyplus1pm-a8032ab12345"
PRO = "shellypro2pm-ec62608a1b2c"
EM3 = "shellypro3em-0cb815fc1234"
PM = "shellypluspmmini-a0a3b3e91234"

SWITCH_STATUS = (
    b'{"id":0,"source":"switch","output":false,"apower":0,"voltage":238.215,"current":0,'
    b'"aenergy":{"total":0.134,"by_minute":[0,0,0],"minute_ts":1632600459},'
    b'"temperature":{"tC":49.5,"tF":121.1}}'
)
# A loaded relay (values by hand) in the same shape, as the valve's relay after `Switch.Set`.
SWITCH_ON = (
    b'{"id":0,"source":"rpc","output":true,"apower":5.2,"voltage":230.1,"current":0.048,'
    b'"aenergy":{"total":1234.567,"by_minute":[88.1,87.9,88],"minute_ts":1700000000},'
    b'"temperature":{"tC":41.6,"tF":106.9}}'
)
NOTIFY_STATUS = json.dumps(
    {
        "src": PRO,
        "dst": f"{PRO}/events",
        "method": "NotifyStatus",
        "params": {"ts": 1700000001.25, "switch:1": {"id": 1, "apower": 5.12}},
    }
).encode()
NOTIFY_EVENT = json.dumps(
    {
        "src": PRO,
        "dst": f"{PRO}/events",
        "method": "NotifyEvent",
        "params": {
            "ts": 1700000002.0,
            "events": [{"component": "input:0", "id": 0, "event": "single_push", "ts": 1.0}],
        },
    }
).encode()
EM_STATUS = (
    b'{"id":0,"a_current":4.029,"a_voltage":236.1,"a_act_power":951.2,"a_aprt_power":951.9,'
    b'"a_pf":1,"a_freq":50,"b_current":4.027,"b_voltage":236.201,"b_act_power":-951.1,'
    b'"b_aprt_power":951.8,"b_pf":1,"b_freq":50,"c_current":3.03,"c_voltage":236.402,'
    b'"c_act_power":715.4,"c_aprt_power":716.2,"c_pf":1,"c_freq":50,"n_current":11.029,'
    b'"total_current":11.086,"total_act_power":715.511,"total_aprt_power":2619.861}'
)
EM1_STATUS = (
    b'{"id":1,"current":2.598,"voltage":234.9,"act_power":501.8,"aprt_power":612.4,'
    b'"pf":0.84,"freq":50,"calibration":"factory"}'
)
PM1_STATUS = (
    b'{"id":0,"voltage":235.2,"current":0.311,"apower":48.3,"freq":50,'
    b'"aenergy":{"total":11.679,"by_minute":[0,0,0],"minute_ts":1700000000},'
    b'"ret_aenergy":{"total":0,"by_minute":[0,0,0],"minute_ts":1700000000}}'
)


DEVICES = [
    DeviceConfig(id="main-valve", adapter="shelly", name=PLUS, role="water_valve"),
    DeviceConfig(id="heater", adapter="shelly", name=PRO, role="power_cut"),
    DeviceConfig(id="hall-siren", adapter="shelly", name=f"{PRO}#1", role="siren"),
    DeviceConfig(id="mains", adapter="shelly", name=EM3),
    DeviceConfig(id="fridge", adapter="shelly", name=PM),
    DeviceConfig(id="kitchen-leak", adapter="zigbee2mqtt", name="Kitchen Leak"),
]


def _shelly(src: str = "homeguard-hub") -> tuple[ShellyAdapter, Sink]:
    sink = Sink()
    return ShellyAdapter(DEVICES, sink, 65536, src=src), sink


def test_subscriptions_ownership_and_control() -> None:
    adapter, _ = _shelly()
    assert adapter.name == "shelly"
    assert adapter.filters() == (
        f"{PLUS}/#",
        f"{PM}/#",
        f"{PRO}/#",
        f"{EM3}/#",
        "homeguard-hub/rpc",
    )
    assert adapter.owns(f"{PLUS}/status/switch:0")
    assert adapter.owns("homeguard-hub/rpc")
    assert not adapter.owns("zigbee2mqtt/Kitchen Leak")
    assert not adapter.owns(PLUS)  # the prefix alone is no topic of the device
    assert adapter.controls("main-valve")
    assert adapter.controls("hall-siren")
    assert not adapter.controls("kitchen-leak")


def test_switch_status_as_a_water_valve() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PLUS}/status/switch:0", SWITCH_STATUS, 10.0)
    assert sink.events == [
        Reading("main-valve", M.VALVE, "closed", 10.0),  # relay off = valve closed
        Reading("main-valve", M.POWER, 0.0, 10.0),
        Reading("main-valve", M.VOLTAGE, 238.215, 10.0),
        Reading("main-valve", M.CURRENT, 0.0, 10.0),
        Reading("main-valve", M.ENERGY, 0.134 / 1000, 10.0),  # Wh → kWh
        Reading("main-valve", M.TEMPERATURE, 49.5, 10.0),
        Reading("main-valve", M.PROBLEM, False, 10.0),  # a whole status without `errors`
    ]
    assert sink.refused == []


def test_switch_status_as_a_plain_switch() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PRO}/status/switch:0", SWITCH_ON, 3.0)
    assert sink.events == [
        Reading("heater", M.SWITCH, True, 3.0),
        Reading("heater", M.POWER, 5.2, 3.0),
        Reading("heater", M.VOLTAGE, 230.1, 3.0),
        Reading("heater", M.CURRENT, 0.048, 3.0),
        Reading("heater", M.ENERGY, 1.234567, 3.0),
        Reading("heater", M.TEMPERATURE, 41.6, 3.0),
        Reading("heater", M.PROBLEM, False, 3.0),
    ]


def test_second_channel_and_unconfigured_channels() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PRO}/status/switch:1", b'{"id":1,"source":"init","output":true}', 1.0)
    adapter.decode(f"{PLUS}/status/switch:1", SWITCH_STATUS, 2.0)  # nobody configured channel 1
    assert sink.events == [
        Reading("hall-siren", M.SWITCH, True, 1.0),
        Reading("hall-siren", M.PROBLEM, False, 1.0),
    ]
    assert sink.refused == []


def test_availability_for_every_channel() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PRO}/online", b"false", 1.0)
    adapter.decode(f"{PLUS}/online", b"true", 2.0)
    adapter.decode(f"{PLUS}/online", b"offline", 3.0)
    assert sink.events == [
        Availability("heater", False, 1.0),
        Availability("hall-siren", False, 1.0),
        Availability("main-valve", True, 2.0),
        Availability("main-valve", False, 3.0),
    ]
    with pytest.raises(BadInputError) as err:
        adapter.decode(f"{PLUS}/online", b"maybe", 4.0)
    assert err.value.reason is BadInputReason.WRONG_TYPE


def test_notifications_partial_full_and_events() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PRO}/events/rpc", NOTIFY_STATUS, 1.0)
    adapter.decode(f"{PRO}/events/rpc", NOTIFY_EVENT, 2.0)
    full = {
        "src": PLUS,
        "dst": f"{PLUS}/events",
        "method": "NotifyFullStatus",
        "params": {
            "ts": 1700000003.0,
            "sys": {"uptime": 12},
            "input:0": {"id": 0, "state": False},
            "switch:0": {"id": 0, "output": True, "apower": 0},
        },
    }
    adapter.decode(f"{PLUS}/events/rpc", json.dumps(full).encode(), 3.0)
    assert sink.events == [
        Reading("hall-siren", M.POWER, 5.12, 1.0),
        Reading("main-valve", M.VALVE, "open", 3.0),
        Reading("main-valve", M.POWER, 0.0, 3.0),
        Reading("main-valve", M.PROBLEM, False, 3.0),  # NotifyFullStatus: a whole status
    ]
    assert sink.refused == []


def test_energy_meters() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{EM3}/status/em:0", EM_STATUS, 1.0)
    adapter.decode(f"{PM}/status/pm1:0", PM1_STATUS, 2.0)
    adapter.decode(
        f"{PRO}/status/em1:1", EM1_STATUS, 3.0
    )  # channel 1 of any component is `prefix#1`
    assert sink.events == [
        Reading("mains", M.VOLTAGE, 236.1, 1.0),  # phase A
        Reading("mains", M.CURRENT, 11.086, 1.0),
        Reading("mains", M.POWER, 715.511, 1.0),
        Reading("mains", M.PROBLEM, False, 1.0),
        Reading("fridge", M.VOLTAGE, 235.2, 2.0),
        Reading("fridge", M.CURRENT, 0.311, 2.0),
        Reading("fridge", M.POWER, 48.3, 2.0),
        Reading("fridge", M.ENERGY, 0.011679, 2.0),
        Reading("fridge", M.PROBLEM, False, 2.0),
        Reading("hall-siren", M.CURRENT, 2.598, 3.0),
        Reading("hall-siren", M.VOLTAGE, 234.9, 3.0),
        Reading("hall-siren", M.POWER, 501.8, 3.0),
        Reading("hall-siren", M.PROBLEM, False, 3.0),
    ]
    assert sink.refused == []


def test_commands_are_switch_rpcs() -> None:
    adapter, _ = _shelly(src="homeguard-test")
    sent = [
        adapter.encode(Command("c1", "main-valve", CommandAction.CLOSE_VALVE, 1.0)),
        adapter.encode(Command("c2", "heater", CommandAction.CUT_POWER, 1.0)),
        adapter.encode(Command("c3", "hall-siren", CommandAction.SIREN_ON, 1.0)),
        adapter.encode(Command("c4", "main-valve", CommandAction.READ_STATE, 1.0)),
    ]
    assert [[(o.topic, json.loads(o.payload), o.qos, o.retain) for o in s] for s in sent] == [
        [
            (
                f"{PLUS}/rpc",
                {
                    "id": 1,
                    "src": "homeguard-test",
                    "method": "Switch.Set",
                    "params": {"id": 0, "on": False},
                },
                1,
                False,
            )
        ],
        [
            (
                f"{PRO}/rpc",
                {
                    "id": 2,
                    "src": "homeguard-test",
                    "method": "Switch.Set",
                    "params": {"id": 0, "on": False},
                },
                1,
                False,
            )
        ],
        [
            (
                f"{PRO}/rpc",
                {
                    "id": 3,
                    "src": "homeguard-test",
                    "method": "Switch.Set",
                    "params": {"id": 1, "on": True},
                },
                1,
                False,
            )
        ],
        [
            (
                f"{PLUS}/rpc",
                {
                    "id": 4,
                    "src": "homeguard-test",
                    "method": "Switch.GetStatus",
                    "params": {"id": 0},
                },
                1,
                False,
            )
        ],
    ]


def test_read_back_through_the_rpc_response() -> None:
    adapter, sink = _shelly()
    (request,) = adapter.encode(Command("c1", "main-valve", CommandAction.READ_STATE, 1.0))
    request_id = json.loads(request.payload)["id"]
    reply = {
        "id": request_id,
        "src": PLUS,
        "dst": "homeguard-hub",
        "result": json.loads(SWITCH_STATUS),
    }
    adapter.decode("homeguard-hub/rpc", json.dumps(reply).encode(), 5.0)
    assert sink.events == [
        Reading("main-valve", M.VALVE, "closed", 5.0),
        Reading("main-valve", M.POWER, 0.0, 5.0),
        Reading("main-valve", M.VOLTAGE, 238.215, 5.0),
        Reading("main-valve", M.CURRENT, 0.0, 5.0),
        Reading("main-valve", M.ENERGY, 0.000134, 5.0),
        Reading("main-valve", M.TEMPERATURE, 49.5, 5.0),
        Reading("main-valve", M.PROBLEM, False, 5.0),
    ]
    # The same answer again (a QoS 1 duplicate) and answers to requests we never sent: nothing.
    adapter.decode("homeguard-hub/rpc", json.dumps(reply).encode(), 6.0)
    adapter.decode("homeguard-hub/rpc", b'{"id":999,"src":"x","result":{"output":true}}', 6.0)
    # The answer to Switch.Set is `was_on`, not state: the status/switch:0 message confirms.
    (close,) = adapter.encode(Command("c2", "main-valve", CommandAction.CLOSE_VALVE, 7.0))
    set_id = json.loads(close.payload)["id"]
    adapter.decode(
        "homeguard-hub/rpc",
        json.dumps({"id": set_id, "src": PLUS, "result": {"was_on": True}}).encode(),
        8.0,
    )
    assert len(sink.events) == 7
    assert sink.refused == []


def test_rpc_error_response_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    adapter, sink = _shelly()
    (request,) = adapter.encode(Command("c1", "heater", CommandAction.CUT_POWER, 1.0))
    request_id = json.loads(request.payload)["id"]
    error = {"id": request_id, "src": PRO, "error": {"code": -105, "message": "Argument 'id'"}}
    with caplog.at_level(logging.WARNING, logger="drivers.mqtt.shelly"):
        adapter.decode("homeguard-hub/rpc", json.dumps(error).encode(), 2.0)
    assert sink.events == []
    assert "Switch.Set failed" in caplog.text


def test_protection_errors_are_logged_once_while_they_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter, sink = _shelly()
    overheated = json.loads(SWITCH_ON)
    overheated["output"] = False
    overheated["errors"] = ["overtemp", "overpower"]  # as Switch's status lists them
    payload = json.dumps(overheated).encode()
    with caplog.at_level(logging.WARNING, logger="drivers.mqtt.shelly"):
        adapter.decode(f"{PRO}/status/switch:0", payload, 1.0)
        adapter.decode(f"{PRO}/status/switch:0", payload, 2.0)
        adapter.decode(f"{PRO}/status/switch:0", SWITCH_ON, 3.0)  # no `errors`: cleared
        adapter.decode(f"{PRO}/status/switch:0", payload, 4.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4  # two errors, twice: once when raised, again after clearing
    assert sum("'overtemp'" in w for w in warnings) == 2
    assert all("heater" in w for w in warnings)
    assert sink.refused == []
    # The readings are still there: errors add to them, they do not replace them.
    assert Reading("heater", M.SWITCH, False, 1.0) in sink.events


def test_topics_that_are_not_state_are_ignored() -> None:
    adapter, sink = _shelly()
    ours = b'{"id":1,"src":"homeguard-hub","method":"Switch.Set","params":{"id":0,"on":false}}'
    adapter.decode(f"{PLUS}/rpc", ours, 1.0)
    adapter.decode(f"{PLUS}/status/sys", b'{"uptime": 12}', 1.0)
    adapter.decode(f"{PLUS}/status/input:0", b'{"id":0,"state":true}', 1.0)
    adapter.decode(f"{PLUS}/command", b"status_update", 1.0)
    adapter.decode(f"{PLUS}/events/rpc", b'{"src":"x","method":"NotifyEvent","params":7}', 1.0)
    assert sink.events == []
    assert sink.refused == []


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{PLUS}/status/switch:0", b"{not json", BadInputReason.MALFORMED_JSON),
        (f"{PLUS}/status/switch:0", b"[1, 2]", BadInputReason.NOT_AN_OBJECT),
        (f"{PLUS}/status/switch:0", b"{}" + b" " * 70000, BadInputReason.TOO_LARGE),
        (f"{PLUS}/status/switch:x", b"{}", BadInputReason.BAD_TOPIC),
        (f"{PLUS}/status/switch", b"{}", BadInputReason.BAD_TOPIC),
        (f"{PLUS}/events/rpc", b'{"params": {}}', BadInputReason.WRONG_TYPE),
        (
            f"{PLUS}/events/rpc",
            b'{"method": "NotifyStatus", "params": []}',
            BadInputReason.WRONG_TYPE,
        ),
        ("homeguard-hub/rpc", b'{"id": "1", "result": {}}', BadInputReason.WRONG_TYPE),
        ("homeguard-hub/rpc", b"\xff\xfe", BadInputReason.MALFORMED_JSON),
        ("shellyplus1-ffffffffffff/status/switch:0", b"{}", BadInputReason.UNKNOWN_DEVICE),
    ],
)
def test_bad_messages_are_refused_whole(topic: str, payload: bytes, reason: BadInputReason) -> None:
    adapter, sink = _shelly()
    with pytest.raises(BadInputError) as err:
        adapter.decode(topic, payload, 1.0)
    assert err.value.reason is reason
    assert sink.events == []


def test_a_number_json_does_not_allow_is_refused_alone() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PLUS}/status/switch:0", b'{"id":0,"apower":NaN,"voltage":231.5}', 1.0)
    assert Reading("main-valve", M.VOLTAGE, 231.5, 1.0) in sink.events
    assert not [e for e in sink.events if getattr(e, "measurement", None) is M.POWER]
    assert sink.refused == [("main-valve", BadInputReason.NOT_FINITE)]


def test_bad_fields_are_refused_one_by_one() -> None:
    adapter, sink = _shelly()
    payload = (
        b'{"id":0,"output":"on","apower":1e9,"voltage":231.5,"current":true,'
        b'"aenergy":[1],"temperature":{"tC":null},"errors":"overtemp",'
        b'"source":"init","freq":50}'
    )
    adapter.decode(f"{PLUS}/status/switch:0", payload, 1.0)
    assert sink.events == [Reading("main-valve", M.VOLTAGE, 231.5, 1.0)]
    assert sink.refused == [
        ("main-valve", BadInputReason.WRONG_TYPE),  # output
        ("main-valve", BadInputReason.OUT_OF_RANGE),  # apower
        ("main-valve", BadInputReason.WRONG_TYPE),  # current
        ("main-valve", BadInputReason.WRONG_TYPE),  # aenergy
        ("main-valve", BadInputReason.WRONG_TYPE),  # errors
    ]


def test_huge_integers_are_out_of_range_not_a_crash() -> None:
    adapter, sink = _shelly()
    huge = "9" * 400
    payload = f'{{"apower":{huge},"aenergy":{{"total":{huge}}}}}'.encode()
    adapter.decode(f"{PLUS}/status/switch:0", payload, 1.0)
    assert sink.events == [Reading("main-valve", M.PROBLEM, False, 1.0)]
    assert sink.refused == [
        ("main-valve", BadInputReason.OUT_OF_RANGE),
        ("main-valve", BadInputReason.OUT_OF_RANGE),
    ]


def test_bad_component_in_a_notification_is_refused_alone() -> None:
    adapter, sink = _shelly()
    frame = {
        "method": "NotifyStatus",
        "params": {"switch:zz": {}, "switch:1": 5, "switch:0": {"output": False}},
    }
    adapter.decode(f"{PRO}/events/rpc", json.dumps(frame).encode(), 1.0)
    assert sink.events == [Reading("heater", M.SWITCH, False, 1.0)]
    assert sink.refused == [
        ("heater", BadInputReason.BAD_TOPIC),
        ("heater", BadInputReason.WRONG_TYPE),
    ]


def test_device_names_and_channels() -> None:
    assert parse_name(PLUS) == (PLUS, 0)
    assert parse_name(f"{PRO}#3") == (PRO, 3)
    assert parse_name("home/shelly/garage") == ("home/shelly/garage", 0)
    for bad in (f"{PRO}#", f"{PRO}#x", f"{PRO}#1#2", "a/+/b", "/lead", "#1"):
        with pytest.raises(ValueError, match="MQTT topic prefix"):
            parse_name(bad)
    with pytest.raises(ValueError, match="src"):
        ShellyAdapter([], Sink(), 1024, src="home/guard")


def test_nested_prefixes_pick_the_longest() -> None:
    sink = Sink()
    devices = [
        DeviceConfig(id="outer", adapter="shelly", name="home"),
        DeviceConfig(id="inner", adapter="shelly", name="home/garage"),
    ]
    adapter = ShellyAdapter(devices, sink, 4096)
    adapter.decode("home/garage/online", b"true", 1.0)
    adapter.decode("home/online", b"true", 2.0)
    assert sink.events == [Availability("inner", True, 1.0), Availability("outer", True, 2.0)]


# -- property: nothing but BadInputError ever leaves decode ---------------------------------------

_SUFFIXES = [
    "online",
    "rpc",
    "status/switch:0",
    "status/switch:1",
    "status/em:0",
    "status/em1:0",
    "status/pm1:0",
    "events/rpc",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["switch:0", "output", "aenergy", "total", "tC", "errors", "id", "result"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "method",
                    "params",
                    "result",
                    "error",
                    "output",
                    "apower",
                    "voltage",
                    "current",
                    "aenergy",
                    "total",
                    "temperature",
                    "tC",
                    "errors",
                    "switch:0",
                    "switch:1",
                    "switch:x",
                    "em:0",
                    "em1:0",
                    "pm1:0",
                    "act_power",
                    "total_act_power",
                    "a_voltage",
                    "total_current",
                    "ts",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)
_METHODS = st.sampled_from(["NotifyStatus", "NotifyFullStatus", "NotifyEvent", "Other"])


def _decode_only_bad_input(topic: str, payload: bytes) -> None:
    adapter, _ = _shelly()
    adapter.encode(Command("c", "main-valve", CommandAction.READ_STATE, 0.0))  # request id 1
    with contextlib.suppress(BadInputError):
        adapter.decode(topic, payload, 1.0)


@settings(max_examples=300, deadline=None)
@given(suffix=st.sampled_from(_SUFFIXES), payload=st.binary(max_size=200))
def test_random_bytes_raise_only_bad_input(suffix: str, payload: bytes) -> None:
    _decode_only_bad_input(f"{PLUS}/{suffix}", payload)
    _decode_only_bad_input("homeguard-hub/rpc", payload)


@settings(max_examples=500, deadline=None)
@given(
    suffix=st.sampled_from(_SUFFIXES),
    value=_JSON,
    method=_METHODS,
    wrap=st.sampled_from(["bare", "notify", "reply"]),
)
def test_random_json_raises_only_bad_input(
    suffix: str, value: object, method: str, wrap: str
) -> None:
    if wrap == "notify":
        value = {"method": method, "params": {"switch:0": value, "em:0": value}}
    elif wrap == "reply":
        value = {"id": 1, "src": PLUS, "result": value}
    payload = json.dumps(value).encode()
    _decode_only_bad_input(f"{PLUS}/{suffix}", payload)
    _decode_only_bad_input("homeguard-hub/rpc", payload)


# -- protection errors as `problem` readings -------------------------------------------------------

# A Shelly 1PM Mini Gen3 as published over MQTT, captured in ioBroker.shelly's debug log (issue
# iobroker-community-adapters/ioBroker.shelly#1592): a NotifyStatus power delta on `events/rpc`,
# then the whole `status/switch:0` the device sent 7 ms later.
MINI = "shelly1pmminig3-5432044edbc0"
MINI_DELTA = (
    b'{"src":"shelly1pmminig3-5432044edbc0","dst":"shelly1pmminig3-5432044edbc0/events",'
    b'"method":"NotifyStatus","params":{"ts":1788945292.88,"switch:0":{"apower":11.5,'
    b'"current":0.071}}}'
)
MINI_STATUS = (
    b'{"id":0,"source":"MQTT","tag":null, "output":true, "apower":11.5, "voltage":240.3, '
    b'"freq":50.0, "current":0.073, "aenergy":{"total":152669.987,"by_minute":[0.000,0.000,0.000],'
    b'"minute_ts":1788945240}, "ret_aenergy":{"total":0.000,"by_minute":[0.000,0.000,0.000],'
    b'"minute_ts":1788945240},"counts":{"on_time":44340,"on_time_rst_ts":0,"switch_on":539,'
    b'"switch_on_rst_ts":0,"on_above_thr":0,"on_above_thr_rst_ts":0},'
    b'"temperature":{"tC":55.0, "tF":131.0}}'
)


def _notify(prefix: str, component: str, status: dict[str, object]) -> bytes:
    """A NotifyStatus frame in the documented shape (gen2/General/Notifications)."""
    body = {
        "src": prefix,
        "dst": f"{prefix}/events",
        "method": "NotifyStatus",
        "params": {"ts": 1700000100.5, component: status},
    }
    return json.dumps(body).encode()


def _problems(sink: Sink) -> list[tuple[str, object, float]]:
    return [
        (e.device_id, e.value, e.at)
        for e in sink.events
        if isinstance(e, Reading) and e.measurement is M.PROBLEM
    ]


def test_a_whole_status_says_problem_false_a_delta_says_nothing() -> None:
    sink = Sink()
    adapter = ShellyAdapter([DeviceConfig(id="boiler", adapter="shelly", name=MINI)], sink, 65536)
    adapter.decode(f"{MINI}/events/rpc", MINI_DELTA, 1.0)  # carries apower, yet is a delta
    adapter.decode(f"{MINI}/status/switch:0", MINI_STATUS, 1.007)
    assert sink.events == [
        Reading("boiler", M.POWER, 11.5, 1.0),
        Reading("boiler", M.CURRENT, 0.071, 1.0),
        Reading("boiler", M.SWITCH, True, 1.007),
        Reading("boiler", M.POWER, 11.5, 1.007),
        Reading("boiler", M.VOLTAGE, 240.3, 1.007),
        Reading("boiler", M.CURRENT, 0.073, 1.007),
        Reading("boiler", M.ENERGY, 152.669987, 1.007),
        Reading("boiler", M.TEMPERATURE, 55.0, 1.007),
        Reading("boiler", M.PROBLEM, False, 1.007),
    ]
    assert sink.refused == []


def test_protection_errors_are_a_problem_while_they_last() -> None:
    adapter, sink = _shelly()
    # The errors list is Switch's documented status field ("overtemp", "overpower", "overvoltage",
    # "undervoltage"); the values around it are by hand, in the shape of SWITCH_ON.
    tripped = {**json.loads(SWITCH_ON), "output": False, "apower": 0, "errors": ["overpower"]}
    adapter.decode(f"{PRO}/status/switch:0", json.dumps(tripped).encode(), 1.0)
    # NotifyStatus deltas: power alone says nothing about the errors...
    adapter.decode(f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"id": 0, "apower": 0}), 2.0)
    # ...a new list replaces the old one...
    adapter.decode(
        f"{PRO}/events/rpc",
        _notify(PRO, "switch:0", {"id": 0, "errors": ["overtemp", "overpower"]}),
        3.0,
    )
    # ...and a key that disappeared comes as null (gen2/General/Notifications): cleared.
    adapter.decode(f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"id": 0, "errors": None}), 4.0)
    adapter.decode(
        f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"id": 0, "errors": ["overvoltage"]}), 5.0
    )
    adapter.decode(f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"id": 0, "errors": []}), 6.0)
    adapter.decode(f"{PRO}/status/switch:0", json.dumps(tripped).encode(), 7.0)
    adapter.decode(f"{PRO}/status/switch:0", SWITCH_ON, 8.0)  # whole, without `errors`: cleared
    assert _problems(sink) == [
        ("heater", True, 1.0),
        ("heater", True, 3.0),
        ("heater", False, 4.0),
        ("heater", True, 5.0),
        ("heater", False, 6.0),
        ("heater", True, 7.0),
        ("heater", False, 8.0),
    ]
    assert sink.refused == []


@pytest.mark.parametrize(
    ("topic", "status", "device_id"),
    [
        # error names by hand, in the documented `errors` field of each component
        (f"{PM}/status/pm1:0", {**json.loads(PM1_STATUS), "errors": ["overcurrent"]}, "fridge"),
        (f"{EM3}/status/em:0", {**json.loads(EM_STATUS), "errors": ["phase_sequence"]}, "mains"),
        (f"{PRO}/status/em1:1", {**json.loads(EM1_STATUS), "errors": ["out_of_range"]}, "hall-siren"),
    ],
)  # fmt: skip
def test_meter_errors_are_problems_too(
    topic: str, status: dict[str, object], device_id: str
) -> None:
    adapter, sink = _shelly()
    adapter.decode(topic, json.dumps(status).encode(), 1.0)
    assert _problems(sink) == [(device_id, True, 1.0)]
    assert sink.refused == []


def test_errors_in_a_full_status_notification_and_a_get_status_reply() -> None:
    adapter, sink = _shelly()
    full = {
        "src": PLUS,
        "dst": f"{PLUS}/events",
        "method": "NotifyFullStatus",
        "params": {"ts": 1.0, "switch:0": {"id": 0, "output": False, "errors": ["overtemp"]}},
    }
    adapter.decode(f"{PLUS}/events/rpc", json.dumps(full).encode(), 1.0)
    (request,) = adapter.encode(Command("c1", "main-valve", CommandAction.READ_STATE, 1.0))
    reply = {"id": json.loads(request.payload)["id"], "src": PLUS, "result": {"output": False}}
    adapter.decode("homeguard-hub/rpc", json.dumps(reply).encode(), 2.0)
    assert _problems(sink) == [("main-valve", True, 1.0), ("main-valve", False, 2.0)]


def test_errors_of_the_wrong_shape_are_refused_not_a_problem() -> None:
    adapter, sink = _shelly()
    adapter.decode(f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"errors": "overtemp"}), 1.0)
    adapter.decode(f"{PRO}/events/rpc", _notify(PRO, "switch:0", {"errors": [1, 2]}), 2.0)
    assert _problems(sink) == []
    assert sink.refused == [
        ("heater", BadInputReason.WRONG_TYPE),
        ("heater", BadInputReason.WRONG_TYPE),
    ]
