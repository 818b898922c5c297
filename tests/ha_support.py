"""What the Home Assistant discovery tests share: the captured payloads and a recording adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from drivers.mqtt.ha_discovery import HomeAssistantAdapter
from hub.config import DeviceConfig
from hub.events import DeviceDiscovered
from hub.measurements import Measurement as M
from tests.adapter_support import Sink

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
