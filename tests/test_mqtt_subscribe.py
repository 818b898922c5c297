"""A filter MQTT does not allow never reaches the broker, and never costs the hub its link.

Against a real Mosquitto, which answers a SUBSCRIBE with such a filter by dropping the connection
(and paho raises on a filter that is not UTF-8, which used to end the service task and the daemon):
an adapter listing one next to a good one is refused that filter (counted as `bad_topic`) and still
hears the good one; `subscribe_later` raises `BadInputError` for it, and the link stays up.
"""

from __future__ import annotations

import asyncio

import pytest

from drivers.mqtt.adapter import BusSink, Outgoing
from drivers.mqtt.service import MqttService
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.errors import BadInputError, BadInputReason
from hub.events import Command
from tests.broker import Broker
from tests.helpers import Peer, mqtt_service
from tests.task_support import background

ROOT = "hgtest-subscribe"


class _Recorder:
    """An adapter that owns everything under ROOT and records what arrives."""

    name = "recorder"

    def __init__(self, *filters: str) -> None:
        self._filters = filters
        self.received: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def filters(self) -> tuple[str, ...]:
        return self._filters

    def owns(self, topic: str) -> bool:
        return topic.startswith(ROOT + "/")

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        self.received.append((topic, payload))
        self.changed.set()

    def controls(self, device_id: str) -> bool:
        return False

    def encode(self, command: Command) -> list[Outgoing]:
        return []

    async def next(self) -> tuple[str, bytes]:
        while not self.received:
            self.changed.clear()
            await self.changed.wait()
        return self.received.pop(0)


def _service(broker: Broker, adapter: _Recorder, bad_input: BadInputLog) -> MqttService:
    bus = Bus()
    return mqtt_service(broker, "hub-subscribe", [adapter], BusSink(bus, bad_input), bus)


@pytest.mark.parametrize(
    "bad",
    [
        f"{ROOT}/ctrl/\x01/state",  # Mosquitto drops the connection, on every reconnect
        f"{ROOT}/c1/\x85",
        f"{ROOT}/nonchar/\ufffe",
        f"{ROOT}/surrogate/\ud800",  # paho raised UnicodeEncodeError: the service task died
        f"{ROOT}/#/misplaced",  # paho raised ValueError: the service task died
    ],
)
async def test_a_filter_mqtt_refuses_is_left_out_and_the_rest_is_heard(
    broker: Broker, bad: str
) -> None:
    bad_input = BadInputLog()
    recorder = _Recorder(f"{ROOT}/good", bad)
    service = _service(broker, recorder, bad_input)
    async with background(service.run()) as task, Peer(broker, []) as peer:
        async with asyncio.timeout(5):
            await service.ready.wait()
            await peer.publish(f"{ROOT}/good", b"1")
            assert await recorder.next() == (f"{ROOT}/good", b"1")
        assert service.connected
        assert not task.done()
        assert bad_input.counts == {("mqtt", BadInputReason.BAD_TOPIC): 1}


async def test_subscribe_later_refuses_such_a_filter_and_keeps_the_link(broker: Broker) -> None:
    bad_input = BadInputLog()
    recorder = _Recorder(f"{ROOT}/later")
    service = _service(broker, recorder, bad_input)
    with pytest.raises(BadInputError) as info:  # refused even with no connection yet
        service.subscribe_later(f"{ROOT}/later/\ud800")
    assert info.value.reason is BadInputReason.BAD_TOPIC
    async with background(service.run()) as task, Peer(broker, []) as peer:
        async with asyncio.timeout(5):
            await service.ready.wait()
            for bad in (f"{ROOT}/later/\x01", f"{ROOT}/later/\ud800", f"{ROOT}/later/\uffff"):
                with pytest.raises(BadInputError) as info:
                    service.subscribe_later(bad)
                assert info.value.reason is BadInputReason.BAD_TOPIC
            service.subscribe_later(f"{ROOT}/later/ok")  # a good one still goes out
            # Each publish is answered only once the broker has read what came before it on
            # this link; the peer's publish is seen only if the link survived.
            await peer.publish(f"{ROOT}/later", b"2")
            assert await recorder.next() == (f"{ROOT}/later", b"2")
            await peer.publish(f"{ROOT}/later/ok", b"3", retain=True)
            assert await recorder.next() == (f"{ROOT}/later/ok", b"3")
        assert service.connected
        assert not task.done()
        await peer.publish(f"{ROOT}/later/ok", b"", retain=True)  # leave the shared broker clean
