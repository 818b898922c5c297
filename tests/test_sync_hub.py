"""The sync inside the running hub: a leak reaches the cloud, dispatch comes back over MQTT; and
kill -9 of the hub process at random moments while it drains a backlog loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub import topics
from hub.cli import main
from hub.config import load_config
from hub.store import open_database, outbox
from sync.flush import flush_once
from sync.server import serve
from tests.broker import Broker
from tests.helpers import LEAK, Peer, hub_config, running_hub, status_online, z2m
from tests.sync_support import HUB, new_secret, write_backlog, write_secret


async def _start_hub(config_path: Path) -> asyncio.subprocess.Process:
    """`homeguard-hub run` in its own process (what kill -9 and SIGUSR1 are sent to)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "-c",
        str(config_path),
        "run",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_leak_reaches_the_cloud_and_dispatch_comes_back_on_mqtt(
    broker: Broker, tmp_path: Path
) -> None:
    secret = new_secret()
    hub_id = "hub-sync-e2e"
    with serve(tmp_path / "cloud.db", {hub_id: secret}) as cloud:
        config = hub_config(
            broker,
            tmp_path / "data",
            hub_id=hub_id,
            cloud={
                "url": cloud.url,
                "secret_file": str(write_secret(tmp_path / "cloud.secret", secret)),
            },
        )
        async with Peer(broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/#"]) as peer:
            async with running_hub(config, peer):
                start = len(peer.messages)
                await peer.publish(z2m(LEAK), {"water_leak": True})
                topic, payload = await peer.expect(
                    lambda t, _p: t.startswith(f"homeguard/hub/{hub_id}/incidents/"), start=start
                )
                incident_id = json.loads(payload)["id"]
                assert topic == topics.hub_incident(hub_id, incident_id)
                await asyncio.to_thread(cloud.wait_for_long_polls, hub_id, 1, 10.0)
                cloud.queue_update(
                    hub_id,
                    {
                        "type": "dispatch",
                        "incident_id": incident_id,
                        "status": "dispatched",
                        "contractor": {"id": "c-1", "name": "Ace Plumbing"},
                    },
                )
                _, payload = await peer.expect(
                    lambda t, p: t == topic and b'"dispatch"' in p, timeout=15, start=start
                )
                mirrored = json.loads(payload)
                assert mirrored["status"] == "dispatched"
                assert mirrored["dispatch"]["contractor"]["name"] == "Ace Plumbing"
        ids = {i for i, _ in cloud.stored_revisions(hub_id)}
        assert incident_id in ids


def _hub_toml(broker: Broker, tmp_path: Path, url: str, secret: bytes) -> Path:
    path = tmp_path / "hub.toml"
    secret_file = write_secret(tmp_path / "cloud.secret", secret)
    path.write_text(
        f'[hub]\nid = "{HUB}"\ndata_dir = "{tmp_path / "data"}"\nlog_level = "WARNING"\n'
        f"[mqtt]\nport = {broker.port}\n"
        f'[cloud]\nurl = "{url}"\nsecret_file = "{secret_file}"\n'
    )
    return path


@pytest.mark.timeout(120)
async def test_kill_9_while_draining_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    secret = new_secret()
    newest = write_backlog(
        tmp_path / "data", incidents=3000, revisions=2, start=time.time() - 3600, span_s=3000
    )
    rng = random.Random(int.from_bytes(os.urandom(4)))
    with serve(tmp_path / "cloud.db", {HUB: secret}) as cloud:
        config_path = _hub_toml(broker, tmp_path, cloud.url, secret)
        # Slow answers widen the window between "the server stored it" and "the hub marked it".
        cloud.set_fault("slow", count=10)
        for _ in range(5):
            hub = await _start_hub(config_path)
            try:
                # A random moment to die at (choosing it is the point, not waiting for something).
                await asyncio.sleep(rng.uniform(0.6, 2.5))
            finally:
                os.kill(hub.pid, signal.SIGKILL)
                await asyncio.wait_for(hub.wait(), 10)
        result = await flush_once(load_config(config_path), timeout_s=60)
        assert result.error is None
        stored = cloud.stored_revisions(HUB)
    assert len(stored) == len(set(stored))  # nothing stored twice
    assert dict(stored) == newest  # nothing lost; only newest revisions
    db = open_database(tmp_path / "data")
    assert outbox.pending_count(db) == 0


@pytest.mark.timeout(60)
async def test_sync_flush_wakes_the_running_hub(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = new_secret()
    with serve(tmp_path / "cloud.db", {HUB: secret}) as cloud:
        config_path = _hub_toml(broker, tmp_path, cloud.url, secret)
        hub = await _start_hub(config_path)
        try:
            async with Peer(broker, [topics.hub_status(HUB)]) as peer:
                await peer.expect(status_online(HUB), timeout=15)
            # Written behind the hub's back (no bus event): only the flush can wake the drainer.
            newest = write_backlog(
                tmp_path / "data", incidents=30, revisions=2, start=time.time(), span_s=10
            )
            code = await asyncio.to_thread(
                main, ["-c", str(config_path), "sync", "flush", "--timeout", "20"]
            )
            assert code == 0
            assert "asked the running hub" in capsys.readouterr().out
            assert dict(cloud.stored_revisions(HUB)) == newest
        finally:
            hub.terminate()
            assert await asyncio.wait_for(hub.wait(), 10) == 0
