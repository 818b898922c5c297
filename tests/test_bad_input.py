"""Bad input is refused, counted and logged once per cause; it never stops a leak closing the valve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from hub.store import hubstate, open_database
from tests.broker import Broker
from tests.helpers import LEAK, VALVE, Peer, hub_config, on, play_valve, running_hub, z2m

BAD = [
    ("malformed_json", z2m(LEAK), b'{"water_leak": tru'),
    ("not_an_object", z2m(LEAK), b"[1, 2, 3]"),
    ("wrong_type", z2m(LEAK), b'{"water_leak": "yes"}'),
    ("not_finite", "homeguard/sensors/basement/state", b'{"temperature": NaN}'),
    ("out_of_range", "homeguard/sensors/basement/state", b'{"humidity": 180}'),
    ("unknown_key", "homeguard/sensors/basement/state", b'{"temprature": 21.5}'),
    ("too_large", z2m(LEAK), b'{"water_leak": false, "pad": "' + b"x" * 1_000_000 + b'"}'),
    ("unknown_device", "homeguard/sensors/garage/state", b'{"temperature": 20}'),
]


async def test_bad_input_is_counted_logged_once_and_never_blocks_the_leak_path(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = hub_config(broker, tmp_path, hub_id="hub-bad")
    async with Peer(broker, ["zigbee2mqtt/#"]) as peer, running_hub(config, peer):
        for _ in range(3):  # each cause three times: counted three times, logged once
            for _reason, topic, payload in BAD:
                await peer.publish(topic, payload)
        valve = asyncio.create_task(play_valve(peer))
        try:
            start = len(peer.messages)
            await peer.publish(z2m(LEAK), {"water_leak": True})
            await peer.expect(on(z2m(VALVE, "set"), state="OFF"), start=start)
        finally:
            valve.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await valve

    state = hubstate.read(open_database(tmp_path))  # written on the way out
    counts = state["bad_input"]
    for reason, _topic, _payload in BAD:
        assert counts.get(f"mqtt/{reason}") == 3, (reason, counts)
    warnings = [r.getMessage() for r in caplog.records if r.name == "hub.bad_input"]
    first_time = [m for m in warnings if m.startswith("refused input")]
    assert len(first_time) == len(BAD), first_time
    assert any("1000" in m and "limit" in m for m in first_time)
    assert any("'temprature' is not a measurement" in m for m in first_time)
