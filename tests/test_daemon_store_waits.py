"""The leak path never waits for the store, at start-up included. Opening the database checks
its integrity (half a minute for a large file on a cold cache, after a power cut) and may meet
a lock another process holds; the hub used to open it, and register its devices, before it
connected to the broker. Here another process holds the database file locked for the whole
test: the real daemon, on a real Mosquitto, closes the valve on a retained wet sensor long
before the store's 10 s busy timeout has said anything, and systemd's watchdog keeps hearing
from it meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from pathlib import Path

import pytest

from hub import daemon
from hub.store.db import DB_NAME
from tests.broker import Broker
from tests.helpers import LEAK, VALVE, Peer, hub_config, on, until_or_hub_ends, z2m
from tests.test_zeroconf import LogEvents

#: Well inside the store's busy timeout (10 s): the valve must not wait for it.
_LEAK_PATH_WAIT_S = 5.0


class LockedDatabase:
    """The hub's database file, held under an exclusive lock by another connection."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True)
        self._conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
        self._conn.execute("CREATE TABLE other (x)")  # a rollback-journal file: readers wait
        self._conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._conn.close()


async def test_a_leak_at_start_closes_the_valve_while_the_store_cannot_open(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    watchdog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    request.addfinalizer(watchdog.close)
    watchdog.bind(str(tmp_path / "notify.sock"))
    watchdog.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # 2 s: the hub pings every second
    hub_id = "hub-store-waits"
    data_dir = tmp_path / "data"
    config = hub_config(broker, data_dir, hub_id=hub_id, zeroconf={"announce": False})
    lock = LockedDatabase(data_dir)
    with LogEvents.of("hub.store.worker") as store_logs:
        async with Peer(broker, ["zigbee2mqtt/#"]) as peer:
            await peer.publish(z2m(LEAK), {"water_leak": True}, retain=True)
            hub = asyncio.create_task(daemon.run(config))
            try:
                await until_or_hub_ends(
                    peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=_LEAK_PATH_WAIT_S),
                    hub,
                )
                assert not store_logs.matching("cannot open the database")  # still trying
                loop = asyncio.get_running_loop()
                pings = 0
                async with asyncio.timeout(_LEAK_PATH_WAIT_S):
                    while pings < 2:  # the watchdog hears from the hub while the store waits
                        message = await loop.sock_recv(watchdog, 4096)
                        pings += message.count(b"WATCHDOG=1")
                assert not store_logs.matching("cannot open the database")
            finally:
                lock.release()  # the store opens now: the hub's stop need not wait for it
                hub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
                await peer.publish(z2m(LEAK), b"", retain=True)
