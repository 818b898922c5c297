"""The water-leak protocol on the bus alone (no broker): episodes, escalation, no reopening."""

from __future__ import annotations

import asyncio
import contextlib

from hub.bus import Bus
from hub.clock import SystemClock
from hub.events import Command, CommandAction, IncidentReport, Reading
from hub.measurements import Measurement
from rules.water_leak import Place, WaterLeakProtocol


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


async def _next(sub, match):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(5):
        while True:
            await sub.wait()
            for e in sub.drain():
                if match(e):
                    return e


async def test_each_leak_episode_escalates_and_no_valve_is_ever_opened() -> None:
    bus = Bus()
    commands = bus.subscribe("commands", (Command,))
    reports = bus.subscribe("reports", (IncidentReport,))
    protocol = _protocol(bus)
    task = asyncio.create_task(protocol.run())
    try:
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
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
