"""Home Assistant MQTT discovery: captured configs in, whole lists of events out.

The configs and state payloads are in `tests/payloads/ha/*.json`, each file naming its source
(Home Assistant's documentation, an ESPHome device, Tasmota, Zigbee2MQTT, EMS-ESP). The last test
runs the adapter in `MqttService` against a real Mosquitto: a retained config, then a state, gives a
`Reading` on the bus, whether the config was there before the hub connected or came after.
Units, device classes, refusals and availability modes are in `test_ha_values.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest

from drivers.mqtt.ha_discovery import device_id_for
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.broker import Broker
from tests.ha_support import (
    HA,
    adapter,
    config,
    discovered,
    discovery_hub,
    feed,
    fixture,
    next_event,
)
from tests.helpers import Peer

# -- captured configs -------------------------------------------------------------------------------


def test_home_assistant_docs_examples() -> None:
    ha, sink, subscribed = adapter()
    data = fixture("ha_docs")
    feed(ha, data, "configs")
    assert sink.events == [
        discovered("ha-motion01ad", "motion01ad", None, M.MOTION),
        discovered("ha-temp01ae", "temp01ae", "Example Sensor", M.TEMPERATURE),
        discovered("ha-hum01ae", "hum01ae", None, M.HUMIDITY),
        discovered("ha-Acurite-986-1R-51778-T", "Acurite-986-1R-51778-T", "Acurite", M.TEMPERATURE),
    ]
    assert ha.ignored == 1  # the irrigation switch: not a component the hub reads
    # Both bedroom sensors read one state topic, subscribed once.
    assert subscribed == [
        "homeassistant/binary_sensor/garden/state",
        "homeassistant/sensor/sensorBedroom/state",
        "rtl_433/rtl433/devices/Acurite-986/1R/51778/temperature_C",
    ]
    assert ha.filters() == (
        "homeassistant/+/+/config",
        "homeassistant/+/+/+/config",
        *sorted(subscribed),
    )
    sink.events.clear()
    feed(ha, data, "states", at=2.0)
    assert sink.events == [
        Reading("ha-motion01ad", M.MOTION, True, 2.0),
        Reading("ha-temp01ae", M.TEMPERATURE, 23.2, 2.0),
        Reading("ha-hum01ae", M.HUMIDITY, 43.7, 2.0),
        Reading("ha-Acurite-986-1R-51778-T", M.TEMPERATURE, 21.3, 2.0),
    ]
    assert sink.refused == []


def test_an_empty_config_deletes_the_entity() -> None:
    ha, sink, _ = adapter()
    feed(ha, fixture("ha_docs"), "configs")
    ha.decode("homeassistant/binary_sensor/garden/config", b"", 3.0)
    assert "ha-motion01ad" not in ha.entity_ids()
    assert not ha.owns("homeassistant/binary_sensor/garden/state")
    assert "homeassistant/binary_sensor/garden/state" not in ha.filters()
    ha.decode("homeassistant/binary_sensor/garden/config", b"", 4.0)  # deleting twice: nothing
    assert sink.refused == []


def test_esphome_device() -> None:
    ha, sink, subscribed = adapter()
    data = fixture("esphome")
    feed(ha, data, "configs")
    temperature, humidity = "ha-ESPsensorgarage_temperature", "ha-ESPsensorgarage_humidity"
    assert sink.events == [
        discovered(temperature, "ESPsensorgarage_temperature", "esp32", M.TEMPERATURE),
        discovered(humidity, "ESPsensorgarage_humidity", "esp32", M.HUMIDITY),
    ]
    assert ha.ignored == 2  # the binary sensor without a device class; the status LED
    assert subscribed == [
        "garagedoor1/sensor/garage_temperature/state",
        "garagedoor1/status",
        "garagedoor1/sensor/garage_humidity/state",
    ]
    sink.events.clear()
    feed(ha, data, "states", at=2.0)
    assert sink.events == [
        Availability(temperature, True, 2.0),
        Availability(humidity, True, 2.0),
        Reading(temperature, M.TEMPERATURE, 18.6, 2.0),
        Reading(humidity, M.HUMIDITY, 61.3, 2.0),
        Availability(temperature, False, 2.0),
        Availability(humidity, False, 2.0),
    ]
    assert sink.refused == [(temperature, BadInputReason.NOT_FINITE)]  # ESPHome's "nan"


def test_tasmota_with_setoption19() -> None:
    ha, sink, subscribed = adapter()
    data = fixture("tasmota")
    feed(ha, data, "configs")
    temperature, leak = "ha-295AB4_DS18S20_Temperature", "ha-18A6B3_SNS_1"
    assert sink.events == [
        discovered(temperature, "295AB4_DS18S20_Temperature", None, M.TEMPERATURE),
        discovered(leak, "18A6B3_SNS_1", None, M.WATER_LEAK),
    ]
    assert ha.ignored == 2  # the sensor id and the RSSI status: no device class
    assert subscribed == [  # `~` expanded at the start of each topic
        "gen-01/tele/SENSOR",
        "gen-01/tele/LWT",
        "tasmota_18A6B3/stat/Moisture",
        "tasmota_18A6B3/tele/LWT",
    ]
    sink.events.clear()
    feed(ha, data, "states", at=2.0)
    assert sink.events == [
        Availability(temperature, True, 2.0),  # Tasmota's own "Online"
        Reading(temperature, M.TEMPERATURE, 21.4, 2.0),  # {{value_json['DS18S20'].Temperature}}
        Availability(leak, True, 2.0),
        Reading(leak, M.WATER_LEAK, True, 2.0),
        Reading(leak, M.WATER_LEAK, False, 2.0),
    ]
    assert sink.refused == []


def test_zigbee2mqtt_discovery() -> None:
    ha, sink, _ = adapter()
    data = fixture("zigbee2mqtt")
    feed(ha, data, "configs")
    leak = "ha-0x282c02bfffe5e3fa_water_leak_zigbee2mqtt"
    battery = "ha-0x282c02bfffe5e3fa_battery_zigbee2mqtt"
    door = "ha-0x00158d000122fcd1_contact_zigbee2mqtt"
    assert [e.device_id for e in sink.events if isinstance(e, DeviceDiscovered)] == [
        leak,
        battery,  # diagnostic, but a battery: kept
        door,
    ]
    sink.events.clear()
    feed(ha, data, "states", at=2.0)
    assert sink.events == [
        # availability_mode "all": online only once the bridge and the device both said so
        Availability(leak, False, 2.0),
        Availability(battery, False, 2.0),
        Availability(door, True, 2.0),
        Availability(leak, True, 2.0),
        Availability(battery, True, 2.0),
        Reading(leak, M.WATER_LEAK, False, 2.0),  # payload_on true / payload_off false
        Reading(battery, M.BATTERY, 100.0, 2.0),
        Reading(door, M.CONTACT, False, 2.0),  # Zigbee2MQTT's contact true = closed
    ]
    assert sink.refused == []


def test_topics_another_adapter_decodes_are_left_to_it() -> None:
    ha, sink, subscribed = adapter(claimed=lambda topic: topic.startswith("zigbee2mqtt/"))
    feed(ha, fixture("zigbee2mqtt"), "configs")
    assert sink.events == []
    assert subscribed == []
    assert ha.ignored == 3


def test_a_template_that_cannot_be_used_is_refused_by_name() -> None:
    ha, sink, subscribed = adapter()
    ((topic, payload),) = fixture("ems_esp")["configs"]
    with pytest.raises(BadInputError) as err:
        ha.decode(topic, payload.encode(), 1.0)
    assert err.value.reason is BadInputReason.UNSUPPORTED
    assert "value_json['outdoortemp'] if value_json['outdoortemp'] is defined else 0" in str(
        err.value
    )
    assert "only {{ value_json.key }}" in err.value.detail
    assert (sink.events, subscribed) == ([], [])


def test_device_based_discovery() -> None:
    ha, sink, subscribed = adapter()
    ((topic, payload),) = fixture("ha_docs_device")["configs"]
    ha.decode(topic, payload.encode(), 1.0)
    assert sink.events == [
        discovered("ha-temp01ae_t", "temp01ae_t", "xya", M.TEMPERATURE),
        discovered("ha-temp01ae_h", "temp01ae_h", "xya", M.HUMIDITY),
    ]
    assert subscribed == ["sensorBedroom/state"]
    ha.decode("sensorBedroom/state", b'{"temperature": 23.20, "humidity": 43.70}', 2.0)
    assert sink.events[2:] == [
        Reading("ha-temp01ae_t", M.TEMPERATURE, 23.2, 2.0),
        Reading("ha-temp01ae_h", M.HUMIDITY, 43.7, 2.0),
    ]
    ha.decode(topic, b"", 3.0)  # deleting the device deletes its entities
    assert ha.entity_ids() == []


# -- ids, configured devices, changes, bounds ----------------------------------------------------


def test_a_configured_entity_keeps_its_id_and_generated_ids_avoid_taken_ones() -> None:
    devices = [
        DeviceConfig(id="bedroom-temp", adapter=HA, name="temp01ae", location="bedroom"),
        DeviceConfig(id="ha-motion01ad", adapter="native"),  # a configured id a slug would take
    ]
    ha, sink, _ = adapter(devices)
    data = fixture("ha_docs")
    feed(ha, data, "configs")
    feed(ha, data, "states", at=2.0)
    readings = {e.device_id: e.value for e in sink.events if isinstance(e, Reading)}
    assert readings["bedroom-temp"] == 23.2
    (motion,) = [d for d in readings if d.startswith("ha-motion01ad")]
    assert re.fullmatch(r"ha-motion01ad-[0-9a-f]{8}", motion)


def test_generated_ids_are_valid_config_ids() -> None:
    pattern = re.compile(r"^[A-Za-z0-9_-]+$")
    for name in ("temp01ae", "0x00158d0001_water leak/ä", "x" * 300, "///", ""):
        device_id = device_id_for(name)
        assert pattern.fullmatch(device_id), device_id
        assert len(device_id) <= 64, device_id
    assert device_id_for("x" * 300) != device_id_for("x" * 299)  # cut slugs end in a hash


def test_a_changed_config_is_announced_again_an_unchanged_one_is_not() -> None:
    ha, sink, subscribed = adapter()
    topic = "homeassistant/sensor/meter/power/config"
    ha.decode(topic, config(dev_cla="power", unit_of_meas="W"), 1.0)
    ha.decode(topic, config(dev_cla="power", unit_of_meas="W"), 2.0)  # retained again on reconnect
    assert len(sink.events) == 1
    ha.decode(topic, config(dev_cla="power", unit_of_meas="kW"), 3.0)
    assert len(sink.events) == 2
    ha.decode("home/x/state", b"1.5", 4.0)
    assert sink.events[-1] == Reading("ha-x1", M.POWER, 1500.0, 4.0)
    assert subscribed == ["home/x/state"]


def test_entities_are_bounded() -> None:
    ha, sink, _ = adapter(max_entities=2)
    for n in range(3):
        ha.decode(
            f"homeassistant/sensor/n{n}/config",
            config(uniq_id=f"e{n}", dev_cla="power", unit_of_meas="W"),
            1.0,
        )
    assert ha.entity_ids() == ["ha-e0", "ha-e1"]
    assert sink.refused == [("e2", BadInputReason.TOO_LARGE)]
    ha.decode("homeassistant/sensor/n0/config", b"", 2.0)  # room again
    ha.decode(
        "homeassistant/sensor/n2/config",
        config(uniq_id="e2", dev_cla="power", unit_of_meas="W"),
        3.0,
    )
    assert ha.entity_ids() == ["ha-e1", "ha-e2"]


# -- through a real broker ------------------------------------------------------------------------


async def test_retained_discovery_and_state_through_a_real_broker(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    prefix, early, late = "hgtest-ha", "hgtest-dev/early", "hgtest-dev/late"
    retained = [f"{prefix}/binary_sensor/e2e/early/config", f"{prefix}/sensor/e2e/late/config"]
    hub = discovery_hub(broker, "hub-ha-e2e", prefix=prefix)
    service, events, bad_input = hub.service, hub.events, hub.bad_input
    service.subscribe_later("not/connected/yet")  # no connection: nothing, and no error
    async with Peer(broker, []) as peer:
        early_config = {"dev_cla": "moisture", "stat_t": early, "uniq_id": "early-leak"}
        await peer.publish(retained[0], early_config, retain=True)  # before the hub connects
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(10):
                await service.ready.wait()
                await peer.publish(early, b"ON", retain=True)
                assert await next_event(events, Reading) == Reading(
                    "ha-early-leak", M.WATER_LEAK, True, 1000.0
                )
                # A config arriving while connected: its state topic is subscribed on the spot.
                late_config = {"dev_cla": "power", "unit_of_meas": "kW", "stat_t": late, "uniq_id": "late-meter"}  # fmt: skip
                await peer.publish(retained[1], late_config, retain=True)
                await next_event(events, DeviceDiscovered)
                await peer.publish(late, b"2.5", retain=True)  # retained: no race with SUBSCRIBE
                assert await next_event(events, Reading) == Reading(
                    "ha-late-meter", M.POWER, 2500.0, 1000.0
                )
            assert bad_input.total() == 0
            # aiomqtt logs a SUBACK it did not expect at ERROR: subscribe_now must register it.
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for topic in (*retained, early, late):  # leave the shared broker clean
                await peer.publish(topic, b"", retain=True)
