"""A service the home's protection does not depend on may fail unexpectedly; the hub runs on, and
the service starts again after a capped backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from drivers.simulator import Scenario
from hub import backoff, daemon
from hub import contained as contained_module
from hub.bad_input import BadInputLog
from hub.bus import Bus
from hub.cli import main
from hub.clock import SystemClock
from hub.config import parse_config
from hub.contained import FIRST_DELAY_S, MAX_DELAY_S, SETTLED_S, ServiceFaults, contained
from hub.store import hubstate, open_database
from models import runtime
from tests.broker import Broker
from tests.helpers import (
    LEAK,
    VALVE,
    HeldPause,
    Peer,
    hub_config,
    on,
    status_online,
    until_or_hub_ends,
    z2m,
)
from tests.test_zeroconf import LogEvents


async def test_an_unexpected_error_ends_that_service_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = ServiceFaults()
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
            failing = tg.create_task(contained("anomaly", broken, faults, restart=False))
            tg.create_task(leak_path())
            await failing  # it ended, and ended nothing else
            go_on.set()
    assert served.is_set()
    assert faults.stopped == {"anomaly": "OverflowError: int too large to convert to float"}
    assert "anomaly stopped on an unexpected error; the hub runs on without it" in caplog.text
    assert "Traceback" in caplog.text


class _Pauses:
    """Stands for asyncio.sleep: records each pause, lets the loop turn once, and keeps a clock
    that the pauses (and `advance`) move."""

    def __init__(self) -> None:
        self.taken: list[float] = []
        self.now = 0.0

    async def __call__(self, delay: float) -> None:
        self.taken.append(delay)
        self.now += delay
        await asyncio.sleep(0)

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pause at the top of its jitter range (the backoff draws uniformly below it)."""
    monkeypatch.setattr(backoff.random, "uniform", lambda low, high: high)


@pytest.mark.usefixtures("no_jitter")
async def test_a_failed_service_starts_again_after_a_growing_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = ServiceFaults()
    pauses = _Pauses()
    runs = 0
    shown: list[dict[str, str]] = []  # what status shows as stopped at the start of each run

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        shown.append(dict(faults.stopped))
        if runs <= 4:
            raise ValueError(f"bad advert {runs}")

    with caplog.at_level(logging.WARNING):
        await contained("ble", flaky, faults, sleep=pauses, monotonic=pauses.monotonic)
    assert runs == 5
    assert shown == [{}] * 5  # running again: no longer shown as stopped
    assert pauses.taken == [FIRST_DELAY_S * 2**i for i in range(4)]  # jitter at its top
    assert faults.as_status() == {
        "stopped_services": {},
        "service_failures": {
            "ble": {"failures": 4, "last_error": "ValueError: bad advert 4", "restarts": True}
        },
    }
    assert caplog.text.count("ble: starting again after an unexpected error") == 4
    assert "starts it again in" in caplog.text


@pytest.mark.usefixtures("no_jitter")
async def test_the_pause_is_capped_and_a_long_run_makes_it_short_again() -> None:
    faults = ServiceFaults()
    pauses = _Pauses()
    runs = 0

    async def failing() -> None:
        nonlocal runs
        runs += 1
        if runs == 12:
            pauses.now += SETTLED_S  # this run lasted long before it failed
        if runs <= 12:
            raise RuntimeError("again")

    await contained("sync", failing, faults, sleep=pauses, monotonic=pauses.monotonic)
    assert pauses.taken[:7] == [FIRST_DELAY_S * 2**i for i in range(7)]  # 5 s ... 320 s
    assert pauses.taken[7:11] == [MAX_DELAY_S] * 4  # the cap
    assert pauses.taken[11] == FIRST_DELAY_S  # the 12th run lasted: short again


async def test_a_failure_while_stopped_is_shown_until_it_runs_again() -> None:
    faults = ServiceFaults()
    pause = HeldPause()
    runs = 0

    async def once_broken() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise KeyError("x")

    task = asyncio.create_task(contained("serial", once_broken, faults, sleep=pause))
    await pause.paused.wait()
    assert faults.stopped == {"serial": "KeyError: 'x'"}
    pause.resume.set()
    await task
    assert faults.stopped == {}
    assert faults.failures == {"serial": (1, "KeyError: 'x'", True)}


async def test_cancelling_a_contained_service_still_cancels_it() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    faults = ServiceFaults()
    task = asyncio.create_task(contained("ble", forever, faults))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert faults.as_status() == {"stopped_services": {}, "service_failures": {}}  # not a failure


async def test_cancelling_it_during_its_pause_cancels_it() -> None:
    pause = HeldPause()  # never resumed

    async def broken() -> None:
        raise ValueError("x")

    task = asyncio.create_task(contained("ble", broken, ServiceFaults(), sleep=pause))
    await pause.paused.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_status_names_a_stopped_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nid = "hub-x"\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nport = 1\n')
    db = open_database(tmp_path / "data")
    faults = ServiceFaults()
    faults.failed("ble", ValueError("bad advert"), restarts=False)
    faults.failed("sync", KeyError("revision"), restarts=True)
    faults.failed("serial", OverflowError("too large"), restarts=True)
    faults.failed("serial", OverflowError("still too large"), restarts=True)
    faults.started("serial")
    hubstate.write(db, faults.as_status())
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert (
        "STOPPED: ble (ValueError: bad advert); the hub runs on without it until it restarts "
        "(`sudo systemctl restart homeguard-hub`)"
    ) in out
    assert (
        "STOPPED: sync (KeyError: 'revision'); the hub runs on without it and starts it again "
        "shortly"
    ) in out
    assert (
        "RESTARTED: serial, after 2 unexpected errors (the last: OverflowError: still too large)"
    ) in out


async def test_the_real_hub_starts_a_failed_service_again_and_keeps_its_leak_path(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The anomaly service meets an error nobody expected from onnxruntime (the library
    boundary) at its first start: it is started again and loads its model; meanwhile and after,
    a leak closes the valve; status shows the restart."""
    real_session = runtime.Session
    calls = 0

    def session_failing_once(data: bytes) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("onnxruntime: something nobody expected")
        return real_session(data)

    monkeypatch.setattr(runtime, "Session", session_failing_once)
    monkeypatch.setattr(contained_module, "FIRST_DELAY_S", 0.05)  # not 5 s in a test
    hub_id = "hub-contained"
    config = hub_config(broker, tmp_path, hub_id=hub_id, zeroconf={"announce": False})
    with LogEvents.of("hub.contained") as restarts, LogEvents.of("models.service") as models:
        async with Peer(broker, ["zigbee2mqtt/#", f"homeguard/hub/{hub_id}/#"]) as peer:
            hub = asyncio.create_task(daemon.run(config))
            try:
                await until_or_hub_ends(peer.expect(status_online(hub_id), timeout=10), hub)
                await until_or_hub_ends(
                    restarts.wait_for("anomaly: starting again after an unexpected error"), hub
                )
                await until_or_hub_ends(models.wait_for("anomaly model univariate"), hub)
                await peer.publish(z2m(LEAK), {"water_leak": True})
                await until_or_hub_ends(
                    peer.expect(on(z2m(VALVE, "set"), state="OFF"), timeout=10), hub
                )
                assert not hub.done()
            finally:
                hub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
    assert calls == 2  # one failed start, one that loaded the model
    assert "anomaly stopped on an unexpected error" in restarts.matching("stopped")[0].getMessage()
    state = hubstate.read(open_database(tmp_path))
    assert state["stopped_services"] == {}
    assert state["service_failures"] == {
        "anomaly": {
            "failures": 1,
            "last_error": "RuntimeError: onnxruntime: something nobody expected",
            "restarts": True,
        }
    }
    assert state["anomaly"]["problem"] is None


def test_a_ble_recording_and_the_simulator_are_not_started_again(tmp_path: Path) -> None:
    """Started again, a recording would replay from its start and the simulator would be a new
    house with its valve open again; the Bluetooth adapter and the rest are started again."""
    recording = tmp_path / "adverts.jsonl"
    recording.write_text("")
    config = parse_config(
        {
            "hub": {"id": "hub-x", "data_dir": str(tmp_path / "data")},
            "devices": [{"id": "lounge", "adapter": "bthome", "address": "A4:C1:38:8D:18:B2"}],
        }
    )
    args = (SystemClock(), Bus(), BadInputLog())
    replaying = daemon._optional(config, daemon.Options(ble_replay=recording), *args)
    assert {"ble", "anomaly", "anomaly-rule"} <= set(replaying.jobs)
    assert replaying.once == {"ble"}
    live = daemon._optional(config, daemon.Options(simulate=Scenario.LEAK), *args)
    assert {"ble", "simulator"} <= set(live.jobs)
    assert live.once == {"simulator"}
