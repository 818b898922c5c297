"""The decoder benchmark's cases: each family's captured payload, the hub's decoding path for it
and the bare library parse beside it (see `bench.decoders`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bthome_ble import BTHomeBluetoothDeviceData
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
from pymodbus.client import AsyncModbusSerialClient
from xiaomi_ble import XiaomiBluetoothDeviceData

from bench._common import REPO, reading_payload
from drivers.ble.advert import Advert
from drivers.ble.decode import Decoder
from drivers.ble.recording import read_recording
from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from drivers.mqtt.native import NativeAdapter
from drivers.mqtt.rtl433 import Rtl433Adapter
from drivers.mqtt.shelly import ShellyAdapter
from drivers.mqtt.tasmota import TasmotaAdapter
from drivers.mqtt.zigbee2mqtt import Zigbee2MqttAdapter
from drivers.serial import Router
from drivers.serial.dsmr import decode_telegram
from drivers.serial.json_lines import decode_line
from drivers.serial.sdm import PROFILES, decode_registers
from hub.config import DeviceConfig
from hub.errors import BadInputError
from hub.events import Reading
from tests.serial_support import SDM120_VALUES, SDM630_VALUES

PAYLOADS = REPO / "tests" / "payloads"
MAX_PAYLOAD = 64 * 1024  # the hub's default [mqtt] max_payload_bytes
AT = 1_700_000_000.0

# -- captured payloads (copied from the tests named; sources are cited there) ---------------------

#: tests/test_adapters.py: Zigbee2MQTT's documented state of an Aqara WSDCGQ11LM climate sensor.
AQARA_CLIMATE = (
    b'{"battery":91,"humidity":45.78,"linkquality":101,"power_outage_count":2,'
    b'"pressure":1013.3,"temperature":21.59,"voltage":2985}'
)
#: tests/test_shelly.py: a Plus 1PM's `status/switch:0` (Shelly's Gen2 API documentation).
SHELLY_PLUS = "shellyplus1pm-a8032ab12345"
SHELLY_SWITCH_STATUS = (
    b'{"id":0,"source":"switch","output":false,"apower":0,"voltage":238.215,"current":0,'
    b'"aenergy":{"total":0.134,"by_minute":[0,0,0],"minute_ts":1632600459},'
    b'"temperature":{"tC":49.5,"tF":121.1}}'
)
#: tests/test_shelly.py: a 1PM Mini Gen3's NotifyStatus power delta on `events/rpc` (ioBroker log).
SHELLY_MINI = "shelly1pmminig3-5432044edbc0"
SHELLY_NOTIFY_STATUS = (
    b'{"src":"shelly1pmminig3-5432044edbc0","dst":"shelly1pmminig3-5432044edbc0/events",'
    b'"method":"NotifyStatus","params":{"ts":1788945292.88,"switch:0":{"apower":11.5,'
    b'"current":0.071}}}'
)
#: tests/test_tasmota.py: a Sonoff POW's `tele/.../SENSOR` with ENERGY (arendst/Tasmota #1621).
TASMOTA_POW = (
    b'{"Time":"2018-01-17T18:59:50","ENERGY":{"Total":1.956,"Yesterday":0.054,"Today":0.049,'
    b'"Period":0,"Power":9,"Factor":0.43,"Voltage":231,"Current":0.089}}'
)
#: tests/test_rtl433.py: an Acurite-Tower event with `-M time:unix` (arktronic/hubitat README).
RTL433_TOPIC = "rtl_433/9b13b3f4-rtl433/events"
RTL433_ACURITE = (
    b'{"time" : "1689444701", "protocol" : 40, "model" : "Acurite-Tower", "id" : 10327, '
    b'"channel" : "A", "battery_ok" : 1, "temperature_C" : 26.500, "humidity" : 72, '
    b'"mic" : "CHECKSUM", "mod" : "ASK", "freq" : 433.932, "rssi" : -0.101, "snr" : 21.039, '
    b'"noise" : -21.140}'
)
#: tests/test_serial_json_lines.py: a JSON-lines leak board, dry.
JSON_LINE = b'{"water_leak": false, "temperature": 21.4, "battery": 97}'

_FLOAT32 = AsyncModbusSerialClient.DATATYPE.FLOAT32


# -- the sink -------------------------------------------------------------------------------------


class CountingSink:
    """A `Sink` that only counts: readings emitted, other events, refusals."""

    def __init__(self) -> None:
        self.readings = 0
        self.other = 0
        self.refused = 0

    def emit(self, event: object) -> None:
        if type(event) is Reading:
            self.readings += 1
        else:
            self.other += 1

    def refuse(self, subject: str, err: BadInputError) -> None:
        self.refused += 1


# -- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    family: str
    payload: str
    hub: Callable[[], object]
    baseline: Callable[[], object]
    sink: CountingSink


def _dev(**fields: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(fields)


def _cycle(items: list[bytes]) -> Callable[[], bytes]:
    it: Iterator[bytes] = itertools.cycle(items)
    return it.__next__


def mqtt_cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        family: str, label: str, adapter: Any, sink: CountingSink, topic: str, payload: bytes
    ) -> None:
        decode = adapter.decode
        cases.append(
            Case(
                family,
                label,
                lambda: decode(topic, payload, AT),
                lambda: json.loads(payload),
                sink,
            )
        )

    native_payload = reading_payload(7)
    sink = CountingSink()
    native = NativeAdapter([_dev(id="s7", adapter="native")], sink, MAX_PAYLOAD)
    add("native", "state, 4 values", native, sink, "homeguard/sensors/s7/state", native_payload)

    sink = CountingSink()
    z2m = Zigbee2MqttAdapter(
        [_dev(id="hall", adapter="zigbee2mqtt", name="Hall Climate")], sink, MAX_PAYLOAD
    )
    add(
        "zigbee2mqtt",
        "Aqara WSDCGQ11LM state",
        z2m,
        sink,
        "zigbee2mqtt/Hall Climate",
        AQARA_CLIMATE,
    )

    sink = CountingSink()
    shelly = ShellyAdapter(
        [
            _dev(id="plus", adapter="shelly", name=SHELLY_PLUS),
            _dev(id="mini", adapter="shelly", name=SHELLY_MINI),
        ],
        sink,
        MAX_PAYLOAD,
    )
    add(
        "shelly",
        "status/switch:0 (Plus 1PM)",
        shelly,
        sink,
        f"{SHELLY_PLUS}/status/switch:0",
        SHELLY_SWITCH_STATUS,
    )
    sink = CountingSink()
    shelly = ShellyAdapter([_dev(id="mini", adapter="shelly", name=SHELLY_MINI)], sink, MAX_PAYLOAD)
    add(
        "shelly",
        "events/rpc NotifyStatus",
        shelly,
        sink,
        f"{SHELLY_MINI}/events/rpc",
        SHELLY_NOTIFY_STATUS,
    )

    sink = CountingSink()
    tasmota = TasmotaAdapter(
        [_dev(id="washer", adapter="tasmota", name="tasmota_A1B2C3")], sink, MAX_PAYLOAD
    )
    add(
        "tasmota",
        "tele/SENSOR ENERGY (POW)",
        tasmota,
        sink,
        "tele/tasmota_A1B2C3/SENSOR",
        TASMOTA_POW,
    )

    # rtl_433: the same event with its `time` moved on 3 s each message (past the 2 s duplicate
    # window: every message decoded), and the identical bytes repeated (the duplicate filter).
    acurite = [_dev(id="backyard", adapter="rtl_433", model="Acurite-Tower", device_id=10327)]
    stamps = [
        RTL433_ACURITE.replace(b'"1689444701"', f'"{1689444701 + 3 * i}"'.encode())
        for i in range(1000)
    ]
    sink = CountingSink()
    rtl = Rtl433Adapter(acurite, sink, MAX_PAYLOAD)
    next_varied = _cycle(stamps)
    next_base = _cycle(stamps)
    decode_rtl = rtl.decode
    cases.append(
        Case(
            "rtl_433",
            "Acurite-Tower, time varied",
            lambda: decode_rtl(RTL433_TOPIC, next_varied(), AT),
            lambda: json.loads(next_base()),
            sink,
        )
    )
    sink = CountingSink()
    add(
        "rtl_433",
        "Acurite-Tower, repeated (dedup)",
        Rtl433Adapter(acurite, sink, MAX_PAYLOAD),
        sink,
        RTL433_TOPIC,
        RTL433_ACURITE,
    )

    # Home Assistant discovery: the captured configs first, then state messages.
    for fixture, topic, label in (
        ("esphome", "garagedoor1/sensor/garage_temperature/state", "ESPHome sensor, plain"),
        ("ha_docs", "homeassistant/sensor/sensorBedroom/state", "2 sensors, value_json"),
    ):
        data = json.loads((PAYLOADS / "ha" / f"{fixture}.json").read_text())
        sink = CountingSink()
        ha = HomeAssistantAdapter([], sink, MAX_PAYLOAD, subscribe=lambda _f: None)
        for config_topic, config in data["configs"]:
            ha.decode(config_topic, config.encode(), AT)
        state = next(p for t, p in data["states"] if t == topic).encode()
        add("home_assistant", label, ha, sink, topic, state)
    return cases


def _registers(values: Mapping[int, float], profile: str) -> dict[int, int]:
    """What a poll reads: the profile's blocks, zeros with `values` as FLOAT32 at their addresses."""
    regs: dict[int, int] = {}
    for block in PROFILES[profile].blocks:
        regs.update(dict.fromkeys(range(block.address, block.address + block.count), 0))
    for address, value in values.items():
        high, low = AsyncModbusSerialClient.convert_to_registers(value, _FLOAT32)
        regs[address], regs[address + 1] = high, low
    return regs


def serial_cases() -> list[Case]:
    cases: list[Case] = []
    for model, values in (("SDM120", SDM120_VALUES), ("SDM630", SDM630_VALUES)):
        regs = _registers(values, model)
        pairs = [[regs[f.address], regs[f.address + 1]] for f in PROFILES[model].fields]
        sink = CountingSink()
        router = Router(sink, "meter", "modbus", "meter", model)
        profile = PROFILES[model]

        def hub(
            router: Router = router, profile: Any = profile, regs: dict[int, int] = regs
        ) -> int:
            return router.emit(decode_registers(profile, regs), AT)

        def base(pairs: list[list[int]] = pairs) -> list[Any]:
            convert = AsyncModbusSerialClient.convert_from_registers
            return [convert(p, _FLOAT32) for p in pairs]

        cases.append(Case("modbus (sdm)", f"{model} registers", hub, base, sink))

    telegram = (PAYLOADS / "dsmr" / "dsmr_parser_v5.txt").read_bytes().decode("latin-1")
    sink = CountingSink()
    dsmr_router = Router(sink, "p1", "dsmr", "p1", None)
    v5 = TelegramParser(telegram_specifications.V5)
    cases.append(
        Case(
            "dsmr",
            "DSMR 5 telegram, 3-phase",
            lambda: dsmr_router.emit(decode_telegram(telegram), AT),
            lambda: v5.parse(telegram),
            sink,
        )
    )

    sink = CountingSink()
    line_router = Router(sink, "board", "json_lines", "board", None)
    cases.append(
        Case(
            "json_lines",
            "leak board line (DRY)",
            lambda: line_router.emit(decode_line(JSON_LINE), AT),
            lambda: json.loads(JSON_LINE),
            sink,
        )
    )
    return cases


def _advert(path: Path, address: str) -> Advert:
    return next(a for a in read_recording(path).adverts if a.address == address)


def ble_cases() -> list[Case]:
    cases: list[Case] = []
    bthome, xiaomi = PAYLOADS / "ble" / "bthome.jsonl", PAYLOADS / "ble" / "xiaomi.jsonl"
    for path, adapter, address, key, label in (
        (bthome, "bthome", "A4:C1:38:8D:18:B2", None, "BTHome v2 plain (ATC)"),
        (
            bthome,
            "bthome",
            "54:48:E6:8F:80:A5",
            "231d39c1d7cc1ab1aee224cd096db932",
            "BTHome v2 encrypted",
        ),
        (
            xiaomi,
            "xiaomi",
            "54:EF:44:E0:27:BC",
            "255e6cabb39b2eddd0de992b9fee2bf2",
            "SJWS01LM flood, MiBeacon v5 enc., repeated (dedup)",
        ),
        (xiaomi, "xiaomi", "A4:C1:38:B4:94:4C", None, "LYWSD03MMC, MiBeacon v3 plain"),
    ):
        advert = _advert(path, address)
        device = _dev(id="ble", adapter=adapter, address=address, bind_key=key)
        decoder = Decoder([device])
        sink = CountingSink()

        def hub(
            decoder: Decoder = decoder, advert: Advert = advert, sink: CountingSink = sink
        ) -> None:
            decoded = decoder.decode(advert, AT)
            for reading in decoded.readings:
                sink.emit(reading)
            for err in decoded.refused:
                sink.refuse("ble", err)

        bindkey = bytes.fromhex(key) if key else None
        parser: BTHomeBluetoothDeviceData | XiaomiBluetoothDeviceData = (
            BTHomeBluetoothDeviceData(bindkey=bindkey)
            if adapter == "bthome"
            else XiaomiBluetoothDeviceData(bindkey=bindkey)
        )
        info = advert.service_info()

        def base(parser: Any = parser, info: Any = info) -> object:
            return parser.update(info)

        cases.append(Case(adapter, label, hub, base, sink))
    return cases
