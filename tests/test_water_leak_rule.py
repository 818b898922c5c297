"""The water-leak protocol on the bus alone (no broker): episodes, escalation, no reopening, and
a valve that reports open while the floor is wet closed again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hub.bus import Bus, Subscription
from hub.clock import SystemClock
from hub.events import Command, CommandAction, DeviceForgotten, IncidentReport, Reading
from hub.incident import ActionOutcome, Status
from hub.measurements import Measurement
from hub.store import incidents as incident_repo
from hub.store import open_database
from rules.water_leak import MAX_CLOSE_AGAIN, Place, WaterLeakProtocol
from tests.task_support import background


def _protocol(bus: Bus) -> WaterLeakProtocol:
    places = {
        "leak": Place("leak", "Leak", "kitchen"),
        "valve": Place("valve", "Valve", None),
        "siren": Place("siren", "Siren", None),
    }
    return WaterLeakProtocol(
        bus=bus,
        clock=SystemClock(),
        valves=[places["valve"]],
        sirens=[places["siren"]],
        places=places,
        confirm_timeout_s=0.05,
        retries=0,
    )


@contextlib.asynccontextmanager
async def _running() -> AsyncIterator[tuple[Bus, Subscription[Any], Subscription[Any]]]:
    """The protocol running on a fresh bus; the bus, and subscriptions to commands and reports."""
    bus = Bus()
    commands = bus.subscribe("commands", (Command,))
    reports = bus.subscribe("reports", (IncidentReport,))
    async with background(_protocol(bus).run()):
        yield bus, commands, reports


async def _next(sub, match):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(5):
        while True:
            await sub.wait()
            for e in sub.drain():
                if match(e):
                    return e


async def test_each_leak_episode_escalates_and_no_valve_is_ever_opened() -> None:
    async with _running() as (bus, commands, reports):
        for episode in range(2):
            bus.publish(Reading("leak", Measurement.WATER_LEAK, True, 1.0 + episode))
            first = await _next(commands, lambda c: c.action is not CommandAction.READ_STATE)
            assert (first.device_id, first.action) == ("valve", CommandAction.CLOSE_VALVE)
            siren = await _next(
                commands, lambda c: c.device_id == "siren" and c.action is CommandAction.SIREN_ON
            )
            assert siren.at > 0, episode
            escalated = await _next(reports, lambda r: r.escalated)
            assert escalated.severity == "critical"
            bus.publish(Reading("leak", Measurement.WATER_LEAK, False, 10.0 + episode))
        actions = {c.action for c in commands.drain()}
        assert actions <= {CommandAction.READ_STATE, CommandAction.SIREN_ON}


def _is_close(c: Command) -> bool:
    return c.action is CommandAction.CLOSE_VALVE


async def _valve_closes(bus: Bus, reports: Subscription[Any], at: float) -> None:
    """The valve reports closed, and the hub records its close as confirmed."""
    bus.publish(Reading("valve", Measurement.VALVE, "closed", at))
    await _next(reports, lambda r: r.actions and r.actions[0].result is ActionOutcome.OK)


async def _leak_and_valve_closed(
    bus: Bus, commands: Subscription[Any], reports: Subscription[Any]
) -> None:
    """A leak, the hub's close, and the valve confirming it."""
    bus.publish(Reading("leak", Measurement.WATER_LEAK, True, 1.0))
    await _next(commands, _is_close)
    await _valve_closes(bus, reports, 1.5)


async def test_a_valve_reported_open_while_the_floor_is_wet_is_closed_again() -> None:
    async with _running() as (bus, commands, reports):
        bus.publish(Reading("leak", Measurement.WATER_LEAK, True, 1.0))
        await _next(commands, _is_close)
        # The valve never answers: the close times out (its radio route was down)...
        await _next(reports, lambda r: r.escalated)
        # ...then it comes back, open, with the floor still wet: closed again.
        bus.publish(Reading("valve", Measurement.VALVE, "open", 2.0))
        await _next(commands, _is_close)
        said = await _next(reports, lambda r: r.evidence and r.evidence[0].sensor_id == "valve")
        assert said.evidence[0].value == "open"
        bus.publish(Reading("valve", Measurement.VALVE, "closed", 3.0))
        ok = await _next(reports, lambda r: r.actions and r.actions[0].result is ActionOutcome.OK)
        assert ok.actions[0].target == "valve"
        # Opened again after it had closed (by hand, or a fault): closed again.
        bus.publish(Reading("valve", Measurement.VALVE, "open", 4.0))
        await _next(commands, _is_close)
        bus.publish(Reading("valve", Measurement.VALVE, "closed", 5.0))
        await _next(reports, lambda r: r.actions and r.actions[0].result is ActionOutcome.OK)
        # Once the floor is dry the hub leaves the valve alone (readings are handled in the step
        # that publishes them, so a close would already be there).
        bus.publish(Reading("leak", Measurement.WATER_LEAK, False, 6.0))
        commands.drain()
        bus.publish(Reading("valve", Measurement.VALVE, "open", 7.0))
        assert [c for c in commands.drain() if c.action is not CommandAction.READ_STATE] == []


async def test_a_valve_that_keeps_opening_is_left_to_a_person_and_the_incident_escalated() -> None:
    async with _running() as (bus, commands, reports):
        await _leak_and_valve_closed(bus, commands, reports)
        for n in range(MAX_CLOSE_AGAIN):
            bus.publish(Reading("valve", Measurement.VALVE, "open", 2.0 + n))
            await _next(commands, _is_close)
            await _valve_closes(bus, reports, 2.5 + n)
        reports.drain()
        bus.publish(Reading("valve", Measurement.VALVE, "open", 10.0))
        assert not any(_is_close(c) for c in commands.drain())
        (given_up,) = reports.drain()
        assert given_up.escalated
        assert "keeps opening" in given_up.title
        bus.publish(Reading("valve", Measurement.VALVE, "open", 11.0))  # said once, not again
        assert reports.drain() == []


async def test_a_wet_sensor_removed_from_its_ecosystem_no_longer_counts_as_wet() -> None:
    async with _running() as (bus, commands, reports):
        await _leak_and_valve_closed(bus, commands, reports)
        bus.publish(DeviceForgotten("leak", "zigbee2mqtt", 3.0))  # unpaired while wet
        commands.drain()
        bus.publish(Reading("valve", Measurement.VALVE, "open", 4.0))  # the homeowner reopens it
        assert [c for c in commands.drain() if _is_close(c)] == []


async def test_a_valve_closed_again_after_the_homeowner_resolved_opens_an_incident(
    tmp_path: Path,
) -> None:
    """Resolved from the CLI while the floor is still wet, then the valve opened by hand: the
    hub closes it again, and that is on an open incident with the wet sensor, not added to the
    resolved one (where `incidents list` showed nothing open)."""
    db = open_database(tmp_path)
    async with _running() as (bus, commands, reports):
        bus.publish(Reading("leak", Measurement.WATER_LEAK, True, 1.0))
        first = await _next(reports, lambda r: bool(r.title))
        leak = incident_repo.apply_report(db, first, "hub-x")
        assert leak is not None
        await _valve_closes(bus, reports, 2.0)
        incident_repo.change_status(db, leak.id, Status.RESOLVED, 3.0)  # the floor is still wet
        commands.drain()
        bus.publish(Reading("valve", Measurement.VALVE, "open", 4.0))  # opened by hand
        await _next(commands, _is_close)
        again = await _next(reports, lambda r: r.evidence and r.evidence[0].sensor_id == "valve")
        changed = incident_repo.apply_report(db, again, "hub-x")
        assert changed is not None
        assert changed.id != leak.id
        assert changed.status is Status.OPEN
        assert changed.title == "Water leak at kitchen — valve Valve closed again"
        assert (changed.sensors, changed.location) == (("leak",), "kitchen")
        # Opened by hand once more, the new incident still open: it keeps its title.
        await _valve_closes(bus, reports, 5.0)
        bus.publish(Reading("valve", Measurement.VALVE, "open", 6.0))
        third = await _next(reports, lambda r: r.evidence and r.evidence[0].at == 6.0)
        merged = incident_repo.apply_report(db, third, "hub-x")
    assert merged is not None
    assert merged.id == changed.id
    assert merged.title == "Water leak at kitchen — valve Valve closed again"


async def test_a_valve_closed_again_keeps_the_open_incidents_title() -> None:
    async with _running() as (bus, commands, reports):
        await _leak_and_valve_closed(bus, commands, reports)
        bus.publish(Reading("valve", Measurement.VALVE, "open", 3.0))
        again = await _next(reports, lambda r: r.evidence and r.evidence[0].sensor_id == "valve")
    assert again.title == ""  # merged into the open incident, it leaves its title alone
    assert again.opens_as == "Water leak at kitchen — valve Valve closed again"
