from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker import Broker, running_broker


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
