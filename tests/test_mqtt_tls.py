"""MQTT over TLS: the hub verifies the broker's certificate against the configured CA."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hub import daemon, topics
from tests.broker import Broker, make_certificates, running_broker
from tests.helpers import Peer, hub_config, status_online


async def _run_until_online(config, broker: Broker, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(daemon.run(config))
    try:
        async with Peer(broker, [topics.hub_status(config.hub.id)]) as watcher:
            await watcher.expect(status_online(config.hub.id), timeout=timeout)
        return True
    except TimeoutError:
        return False
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_tls_with_the_right_ca_connects_and_a_wrong_ca_does_not(tmp_path: Path) -> None:
    with running_broker(tls=True) as broker:
        assert broker.tls_port is not None
        tls = {"port": broker.tls_port, "tls": {"ca_file": str(broker.workdir / "ca.pem")}}
        good = hub_config(broker, tmp_path / "good", hub_id="hub-tls", mqtt=tls)
        assert await _run_until_online(good, broker, timeout=10)

        other = tmp_path / "other-ca"
        other.mkdir()
        make_certificates(other)  # a CA that did not sign the broker's certificate
        wrong = {"port": broker.tls_port, "tls": {"ca_file": str(other / "ca.pem")}}
        bad = hub_config(broker, tmp_path / "bad", hub_id="hub-tls-bad", mqtt=wrong)
        assert not await _run_until_online(bad, broker, timeout=2)
