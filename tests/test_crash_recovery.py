"""kill -9 right after the valve command: the incident is there after the restart, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hub.store import incidents as repo
from hub.store import open_database
from tests.broker import Broker
from tests.helpers import LEAK, VALVE, Peer, on, play_valve, status_online, z2m

HUB_ID = "hub-crash"


def _write_config(broker: Broker, tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[hub]
id = "{HUB_ID}"
data_dir = "{tmp_path / "data"}"
[mqtt]
port = {broker.port}
[leak]
confirm_timeout_s = 1
[[devices]]
id = "kitchen-leak"
adapter = "zigbee2mqtt"
name = "{LEAK}"
location = "kitchen"
[[devices]]
id = "main-valve"
adapter = "zigbee2mqtt"
name = "{VALVE}"
role = "water_valve"
"""
    )
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hub", "-c", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _tail(tmp_path: Path) -> str:
    return "".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        for log in sorted(tmp_path.glob("*.log"))
    )


@pytest.mark.parametrize("written_before_death", [True, False], ids=["written", "not-written"])
async def test_kill_9_after_valve_command(
    own_broker: Broker, tmp_path: Path, written_before_death: bool
) -> None:
    config = _write_config(own_broker, tmp_path)
    hub = _start(config, tmp_path / "first.log")
    try:
        async with Peer(own_broker, ["zigbee2mqtt/#", f"homeguard/hub/{HUB_ID}/#"]) as peer:
            await peer.expect(status_online(HUB_ID), timeout=15)
            start = len(peer.messages)
            # Zigbee2MQTT with `retain: true` for the sensor, as the README asks.
            await peer.publish(z2m(LEAK), {"water_leak": True}, retain=True)
            await peer.expect(on(z2m(VALVE, "set"), state="OFF"), start=start)
            os.kill(hub.pid, signal.SIGKILL)
            hub.wait(10)
            # The valve closed (a real one would have, on the command that got out).
            await peer.publish(z2m(VALVE), {"state": "OFF"}, retain=True)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait(10)

    db = open_database(tmp_path / "data")
    if not written_before_death:
        # The crash came before the incident reached the disk: make the database say exactly that.
        db.execute("DELETE FROM incidents")
        db.execute("DELETE FROM outbox")
    db.conn.close()

    # The valve is there before the hub comes back, as in a home.
    async with Peer(own_broker, ["zigbee2mqtt/#", f"homeguard/hub/{HUB_ID}/#"]) as peer:
        valve = asyncio.create_task(play_valve(peer))
        hub = _start(config, tmp_path / "restart.log")
        try:
            await peer.expect(lambda t, p: "/incidents/" in t and b'"result":"ok"' in p, timeout=20)
        except TimeoutError:
            pytest.fail("no confirmed incident after restart; hub log:\n" + _tail(tmp_path))
        finally:
            valve.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await valve
            hub.terminate()
            stopped = hub.wait(10)
        assert stopped == 0  # SIGTERM is a clean stop

    db = open_database(tmp_path / "data")
    found = repo.list_incidents(db)
    assert len(found) == 1, [i.title for i in found]
    incident = found[0]
    assert incident.is_open
    assert incident.emergency_type == "water_damage"
    assert [(a.action, a.result) for a in incident.actions] == [("close_valve", "ok")]
