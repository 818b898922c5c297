"""Home Assistant discovery: topics a config names are checked before anything is subscribed.

A retained config is anyone's to publish. Its state or availability topic must be one MQTT allows
(Mosquitto drops a connection that subscribes anything else, so one config kept every device
unheard, reconnect after reconnect; a lone surrogate made paho raise and ended the daemon), and
must not be a discovery topic (which let one config take over another's). The last test plays the
reviewer's case through a real Mosquitto, broker restart included.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from drivers.mqtt.service import BROKER_BRIDGE_ID
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink
from tests.broker import Broker
from tests.ha_support import adapter, discovery_hub, next_event
from tests.helpers import Peer
from tests.task_support import background

LEAK = {"dev_cla": "moisture"}
UNSUBSCRIBABLE = [
    "evil/\x01/state",
    "evil/\x1f",
    "evil/\x7f",
    "evil/\x85",
    "evil/\x9f",
    "evil/\ufdd0",
    "evil/\ufffe",
    "evil/\U0010ffff",
    "evil/\ud800",
]


def _config(**fields: Any) -> bytes:
    return json.dumps({**LEAK, "uniq_id": "evil", **fields}).encode()


@pytest.mark.parametrize("topic", UNSUBSCRIBABLE)
@pytest.mark.parametrize("key", ["stat_t", "avty_t"])
def test_a_topic_mqtt_does_not_allow_is_refused(key: str, topic: str) -> None:
    ha, sink, subscribed = adapter()
    payload = _config(**{"stat_t": "home/ok", key: topic})
    with pytest.raises(BadInputError) as info:
        ha.decode("homeassistant/binary_sensor/evil/config", payload, 1.0)
    assert info.value.reason is BadInputReason.BAD_TOPIC
    assert (ha.entity_ids(), sink.events, subscribed) == ([], [], [])


def test_a_refused_component_of_a_device_config_leaves_the_others() -> None:
    ha, sink, subscribed = adapter()
    cmps = {
        "good": {"p": "binary_sensor", **LEAK, "stat_t": "home/good", "uniq_id": "good"},
        "bad": {"p": "binary_sensor", **LEAK, "stat_t": "evil/\x01", "uniq_id": "bad"},
    }
    ha.decode("homeassistant/device/dev/config", json.dumps({"cmps": cmps}).encode(), 1.0)
    assert ha.entity_ids() == ["ha-good"]
    assert subscribed == ["home/good"]
    assert sink.refused == [("dev/bad", BadInputReason.BAD_TOPIC)]


VICTIM = "homeassistant/binary_sensor/kitchen/config"


@pytest.mark.parametrize("key", ["stat_t", "avty_t"])
def test_a_config_cannot_read_another_config_s_topic(key: str) -> None:
    ha, sink, subscribed = adapter()
    ha.decode(VICTIM, _config(stat_t="esp/kitchen/leak", uniq_id="kitchen-leak"), 1.0)
    evil = _config(**{"stat_t": "evil/state", key: VICTIM})
    with pytest.raises(BadInputError) as info:
        ha.decode("homeassistant/binary_sensor/evil/config", evil, 2.0)
    assert info.value.reason is BadInputReason.BAD_TOPIC
    # The kitchen sensor moves to a new state topic: its config is still read as a config.
    ha.decode(VICTIM, _config(stat_t="esp/kitchen/leak2", uniq_id="kitchen-leak"), 3.0)
    ha.decode("esp/kitchen/leak2", b"ON", 4.0)
    assert sink.events[-1] == Reading("ha-kitchen-leak", M.WATER_LEAK, True, 4.0)
    assert subscribed == ["esp/kitchen/leak", "esp/kitchen/leak2"]
    assert sink.refused == []
    # Under the prefix, only topics the discovery filters match are refused: Home Assistant's own
    # documentation puts state topics there (`homeassistant/binary_sensor/garden/state`).
    for n, state in enumerate(
        ["homeassistant/binary_sensor/garden/state", "homeassistant/a/b/c/d/config"], start=5
    ):
        ha.decode("homeassistant/binary_sensor/garden/config", _config(stat_t=state), n)
        ha.decode(state, b"ON", n)
        assert sink.events[-1] == Reading("ha-evil", M.WATER_LEAK, True, n)


def test_a_topic_the_link_refuses_refuses_that_entity_only() -> None:
    """Defence in depth: when `subscribe` raises, the entity is not learned (or stays as it was)."""
    subscribed: list[str] = []

    def subscribe(topic: str) -> None:
        if "refused" in topic:
            raise BadInputError(BadInputReason.BAD_TOPIC, "not by this link")
        subscribed.append(topic)

    sink = Sink()
    ha = HomeAssistantAdapter([], sink, 65536, subscribe)
    ha.decode("homeassistant/binary_sensor/a/config", _config(stat_t="home/a", uniq_id="a"), 1.0)
    ha.decode("homeassistant/binary_sensor/b/config", _config(stat_t="refused/b", uniq_id="b"), 1.0)
    ha.decode("homeassistant/binary_sensor/a/config", _config(stat_t="refused/a", uniq_id="a"), 2.0)
    assert ha.entity_ids() == ["ha-a"]
    assert subscribed == ["home/a"]
    assert sink.refused == [("b", BadInputReason.BAD_TOPIC), ("a", BadInputReason.BAD_TOPIC)]
    ha.decode("home/a", b"ON", 3.0)  # `a` is read where it was
    assert sink.events[-1] == Reading("ha-a", M.WATER_LEAK, True, 3.0)


# -- through a real broker ------------------------------------------------------------------------


async def test_hostile_configs_through_a_real_broker_and_a_restart(own_broker: Broker) -> None:
    """The reviewer's case: retained configs naming unsubscribable topics, and a broker restart."""
    hub = discovery_hub(own_broker, "hub-ha-hostile")
    service, ha, events, bad_input = hub.service, hub.adapter, hub.events, hub.bad_input
    good = {**LEAK, "stat_t": "home/good/state", "uniq_id": "good-leak"}
    reading = Reading("ha-good-leak", M.WATER_LEAK, True, 1000.0)
    retained = [f"homeassistant/binary_sensor/{n}/config" for n in ("good", "ctrl", "sur")]
    async with Peer(own_broker, []) as peer:  # there before the hub connects
        await peer.publish(retained[0], good, retain=True)
        await peer.publish(retained[1], _config(stat_t="evil/\x01/state"), retain=True)
    async with background(service.run()) as task:
        async with asyncio.timeout(10), Peer(own_broker, []) as peer:
            await service.ready.wait()
            await next_event(events, DeviceDiscovered)
            await peer.publish(retained[2], _config(stat_t="evil/\ud800"), retain=True)
            await peer.publish("home/good/state", b"ON", retain=True)  # no race with SUBSCRIBE
            assert await next_event(events, Reading) == reading
        # A restart (a Mosquitto upgrade, a power cut): the hub subscribes everything again.
        own_broker.restart()
        async with asyncio.timeout(30):
            await _in_order(
                events,
                Availability(BROKER_BRIDGE_ID, False, 1000.0),
                Availability(BROKER_BRIDGE_ID, True, 1000.0),
            )
        async with asyncio.timeout(10), Peer(own_broker, []) as peer:
            await peer.publish("home/good/state", b"ON", retain=True)
            assert await next_event(events, Reading) == reading
            assert service.connected
        assert not task.done()
    assert ha.entity_ids() == ["ha-good-leak"]
    assert {reason for _, reason in bad_input.counts} == {BadInputReason.BAD_TOPIC}


async def _in_order(events: Any, *wanted: object) -> None:
    pending = list(wanted)
    while pending:
        await events.wait()
        for event in events.drain():
            if pending and event == pending[0]:
                pending.pop(0)
