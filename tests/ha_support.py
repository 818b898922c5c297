"""What the Home Assistant discovery tests share: the captured payloads and a recording adapter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivers.mqtt.adapter import BusSink
from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from drivers.mqtt.service import MqttService
from hub.bad_input import BadInputLog
from hub.bus import Bus, Subscription
from hub.config import DeviceConfig
from hub.events import Availability, DeviceDiscovered, Reading
from hub.measurements import Measurement as M
from tests.adapter_support import Sink
from tests.broker import Broker
from tests.helpers import mqtt_service

PAYLOADS = Path(__file__).parent / "payloads" / "ha"
HA: Final = "home_assistant"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    assert data["source"]  # every fixture names where its payloads come from
    return data


def adapter(
    devices: list[DeviceConfig] | None = None, **kwargs: Any
) -> tuple[HomeAssistantAdapter, Sink, list[str]]:
    sink, subscribed = Sink(), list[str]()
    return (
        HomeAssistantAdapter(devices or [], sink, 65536, subscribed.append, **kwargs),
        sink,
        subscribed,
    )


def feed(ha: HomeAssistantAdapter, data: dict[str, Any], part: str, at: float = 1.0) -> None:
    for topic, payload in data[part]:
        assert ha.owns(topic), topic
        ha.decode(topic, payload.encode(), at)


def discovered(device_id: str, name: str, model: str | None, m: M) -> DeviceDiscovered:
    return DeviceDiscovered(device_id, HA, name, model, (m.value,), 1.0)


def config(**fields: Any) -> bytes:
    return json.dumps({"stat_t": "home/x/state", "uniq_id": "x1", **fields}).encode()


@dataclass
class DiscoveryHub:
    """The MQTT service with one discovery adapter, on a real broker, and what it emits."""

    service: MqttService
    adapter: HomeAssistantAdapter
    events: Subscription[Any]
    bad_input: BadInputLog


def discovery_hub(broker: Broker, hub_id: str, **kwargs: Any) -> DiscoveryHub:
    """A discovery adapter subscribing what it learns through the live service, as the daemon
    wires it; `events` records its readings, discoveries and availability."""
    bus, bad_input = Bus(), BadInputLog()
    events = bus.subscribe("test", (Reading, DeviceDiscovered, Availability), maxsize=1000)
    sink = BusSink(bus, bad_input)
    service: MqttService | None = None

    def subscribe(topic_filter: str) -> None:
        assert service is not None
        service.subscribe_later(topic_filter)

    ha = HomeAssistantAdapter([], sink, 65536, subscribe, **kwargs)
    service = mqtt_service(broker, hub_id, [ha], sink, bus)
    return DiscoveryHub(service, ha, events, bad_input)


async def next_event(events: Subscription[Any], kind: type[Any]) -> Any:
    """The next event of `kind` (others are drained and dropped)."""
    while True:
        await events.wait()
        for event in events.drain():
            if isinstance(event, kind):
                return event
