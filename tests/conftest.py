from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.server import RunningServer, serve
from tests.broker import Broker, running_broker
from tests.sync_support import HUB, FakeClock, new_secret


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """`hub.cli.main` sets the process's umask to 027, as the hub should; a test calling it in
    this process must not leave it so for the next (its Mosquitto reads files the test makes)."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One real Mosquitto for the session (tests use distinct topics/hub ids)."""
    with running_broker() as b:
        yield b


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A Mosquitto of this test's own, for tests that stop or restart it."""
    with running_broker() as b:
        yield b


# -- cloud sync: a virtual clock shared by the hub and the reference server -------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def secret() -> bytes:
    return new_secret()


@pytest.fixture
def cloud(tmp_path: Path, clock: FakeClock, secret: bytes) -> Iterator[RunningServer]:
    with serve(tmp_path / "cloud.db", {HUB: secret}, clock=clock.now) as srv:
        yield srv
