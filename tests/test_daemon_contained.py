"""A service the home's protection does not depend on may fail unexpectedly; the hub runs on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hub.cli import main
from hub.daemon import contained
from hub.store import hubstate, open_database


async def test_an_unexpected_error_ends_that_service_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: dict[str, str] = {}
    served = asyncio.Event()
    go_on = asyncio.Event()

    async def broken() -> None:
        await asyncio.sleep(0)
        raise OverflowError("int too large to convert to float")

    async def leak_path() -> None:  # stands for the hub's own tasks: it must not be cancelled
        await go_on.wait()
        served.set()

    with caplog.at_level(logging.ERROR):
        async with asyncio.TaskGroup() as tg:
            failing = tg.create_task(contained("anomaly", broken(), stopped))
            tg.create_task(leak_path())
            await failing  # it ended, and ended nothing else
            go_on.set()
    assert served.is_set()
    assert stopped == {"anomaly": "OverflowError: int too large to convert to float"}
    assert "anomaly stopped on an unexpected error; the hub runs on without it" in caplog.text
    assert "Traceback" in caplog.text


async def test_cancelling_a_contained_service_still_cancels_it() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    stopped: dict[str, str] = {}
    task = asyncio.create_task(contained("ble", forever(), stopped))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped == {}  # a stop is not a failure


def test_status_names_a_stopped_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nid = "hub-x"\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nport = 1\n')
    db = open_database(tmp_path / "data")
    hubstate.write(db, {"stopped_services": {"ble": "ValueError: bad advert"}})
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "STOPPED: ble (ValueError: bad advert); the hub runs on without it" in out
