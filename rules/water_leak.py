"""The water-leak protocol: wet floor → every water valve closed → confirmed → incident, offline.

Order is the point: the close commands leave on the bus in the same step that sees the first wet
reading, before the incident is written. Then each valve's close is confirmed by its own report
(asked for with READ_STATE, resent up to `retries` times); a valve that will not close escalates:
severity stays critical, every siren sounds, and the incident says so. The hub never opens a valve.

While a sensor is still wet, a valve that reports open again — one that timed out and comes back
open, or one opened by hand or by a fault after it closed — is closed again, with the same
confirmation, and the incident says so. After `MAX_CLOSE_AGAIN` such closes of one valve in one
episode the valve is left to a person and the incident is escalated. A circuit switched back on is
left on: cleaning up may need power, for a pump or a dehumidifier.

Water and electricity: a `power_cut` relay whose `location` is the wet sensor's location is
switched off right after the valves, with the same confirm, retry and escalation; the hub never
switches one back on (a person does, once the place is dry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hub.bus import Bus
from hub.clock import Clock
from hub.events import CommandAction, DeviceForgotten, IncidentKey, IncidentReport, Reading
from hub.incident import (
    ActionKind,
    ActionOutcome,
    EmergencyType,
    IncidentAction,
    IncidentEvidence,
    Severity,
)
from hub.measurements import Measurement, ValveState
from rules.actuation import Actuator, Outcome, StateTracker

_log = logging.getLogger(__name__)

RULE_ID = "water_leak"
RULE_VERSION = "1"

#: The protocol's words, in one place, so an installer can read what the hub will say.
PLAN_VALVES_CLOSING = "The hub is closing the water valve and checking that it closed."
PLAN_VALVES_CLOSED = "The hub closed the water valve. Do not reopen it until the leak is fixed."
PLAN_NO_VALVE = "No automatic shut-off valve is set up: close the main water valve by hand now."
PLAN_VALVE_FAILED = (
    "The water valve did NOT confirm it closed: close the main water valve by hand now."
)
PLAN_POWER_CUT = "The hub switched off the electricity to {location}."
PLAN_POWER_FAILED = (
    "The circuit to {location} did NOT confirm it is off: switch it off at the breaker now."
)
PLAN_COMMON = (
    "Switch off electricity to the wet area if water is near sockets or appliances.",
    "Find the source, move valuables out of the water and photograph the damage for insurance.",
)

_WATCHED = frozenset({Measurement.WATER_LEAK, Measurement.VALVE, Measurement.SWITCH})
#: Closes sent again to one valve in one leak episode: a valve stuck open that reports every
#: minute gets a few more tries, not a command and an incident revision every minute.
MAX_CLOSE_AGAIN = 3


@dataclass(frozen=True, slots=True)
class Place:
    """What the protocol needs to know of a device: how to call it and where it is."""

    id: str
    name: str
    location: str | None


class WaterLeakProtocol:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        valves: list[Place],
        sirens: list[Place],
        places: dict[str, Place],
        power_cuts: Sequence[Place] = (),
        confirm_timeout_s: float,
        retries: int,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._valves = valves
        self._sirens = sirens
        self._power_cuts = power_cuts
        self._places = places
        self._tracker = StateTracker()
        self._actuator = Actuator(
            bus, clock, self._tracker, confirm_timeout_s=confirm_timeout_s, retries=retries
        )
        self._wet: set[str] = set()
        self._confirming: set[str] = set()
        self._closed: set[str] = set()  # valves confirmed closed, circuits confirmed off
        self._power_failed: set[str] = set()
        self._escalated = False
        self._closed_again: dict[str, int] = {}  # valve -> closes sent again this episode
        self._tg: asyncio.TaskGroup | None = None
        self._early: list[Reading] = []
        # A direct handler, not a queue: the wet reading, the close command and its write to the
        # broker happen in the step that decoded the reading.
        bus.handle(Reading, self.on_reading, where=lambda r: r.measurement in _WATCHED)
        # A sensor removed from its ecosystem (unpaired from Zigbee2MQTT) says nothing more: it
        # no longer counts as wet, or the homeowner could never open the water again.
        bus.handle(DeviceForgotten, lambda e: self._wet.discard(e.device_id))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                for valve in self._valves:  # learn each valve's state at start
                    self._actuator.send(valve.id, CommandAction.READ_STATE)
                early, self._early = self._early, []
                for reading in early:
                    self.on_reading(reading)
                await asyncio.get_running_loop().create_future()  # confirmations run in `tg`
            finally:
                self._tg = None

    def on_reading(self, reading: Reading) -> None:
        tg = self._tg
        if tg is None:  # before `run` started (or after it ended): keep it for `run`
            self._early.append(reading)
            return
        if reading.measurement is Measurement.WATER_LEAK:
            if reading.value is True:
                self._on_wet(reading, tg)
            else:
                self._wet.discard(reading.device_id)
            return
        self._tracker.update(reading)
        reopened = (
            reading.measurement is Measurement.VALVE and reading.value != ValveState.CLOSED
        ) or (reading.measurement is Measurement.SWITCH and reading.value is True)
        if reopened:
            self._closed.discard(reading.device_id)
            if reading.measurement is Measurement.VALVE and self._wet:
                self._close_again(reading, tg)

    def _close_again(self, reading: Reading, tg: asyncio.TaskGroup) -> None:
        """A valve reported open while a sensor is still wet: close it again."""
        valve = next((v for v in self._valves if v.id == reading.device_id), None)
        if valve is None or valve.id in self._confirming:
            return  # not one of ours, or its close is still being confirmed
        wet, place = self._wet_place()
        where = place.location or place.name
        tries = self._closed_again.get(valve.id, 0)
        if tries >= MAX_CLOSE_AGAIN:
            if tries == MAX_CLOSE_AGAIN:
                self._closed_again[valve.id] = tries + 1
                _log.error(
                    "valve %s keeps reporting open during the leak; closed again %d times, "
                    "now left to a person",
                    valve.name,
                    tries,
                )
                self._bus.publish(
                    self._report(
                        at=reading.at,
                        title=f"Water leak at {where} — valve {valve.name} keeps opening",
                        location=place.location,
                        sensors=wet,
                        response_plan=self._plan(),
                        escalated=True,
                    )
                )
            return
        self._closed_again[valve.id] = tries + 1
        mark = self._actuator.send(valve.id, CommandAction.CLOSE_VALVE)
        self._confirming.add(valve.id)
        tg.create_task(self._confirm_valve(valve, mark, tg))
        _log.warning(
            "valve %s reported %s while the leak is still wet: closing it again",
            valve.name,
            reading.value,
        )
        # With the wet sensors, and a title for a new incident only: when the homeowner resolved
        # the incident while the floor was still wet, this action opens one again instead of
        # going to the resolved one; an open incident keeps its title.
        self._bus.publish(
            self._report(
                at=reading.at,
                opens_as=f"Water leak at {where} — valve {valve.name} closed again",
                location=place.location,
                sensors=wet,
                evidence=(
                    IncidentEvidence(
                        valve.id, reading.measurement.value, str(reading.value), None, reading.at
                    ),
                ),
                response_plan=self._plan(),
            )
        )

    def _on_wet(self, reading: Reading, tg: asyncio.TaskGroup) -> None:
        if reading.device_id in self._wet:
            return
        if not self._wet:  # a new leak episode: it may escalate again
            self._escalated = False
            self._closed_again.clear()
        self._wet.add(reading.device_id)
        # 1. Water off, first of all.
        for valve in self._valves:
            if valve.id not in self._closed and valve.id not in self._confirming:
                mark = self._actuator.send(valve.id, CommandAction.CLOSE_VALVE)
                self._confirming.add(valve.id)
                tg.create_task(self._confirm_valve(valve, mark, tg))
        place = self._place(reading.device_id)
        # 2. Electricity off where the water is.
        for circuit in self._power_cuts:
            if circuit.location is None or circuit.location != place.location:
                continue
            if circuit.id not in self._closed and circuit.id not in self._confirming:
                mark = self._actuator.send(circuit.id, CommandAction.CUT_POWER)
                self._confirming.add(circuit.id)
                tg.create_task(self._confirm_power_cut(circuit, mark, tg))
        # 3. Then the incident (the store writes it; the valves are already moving).
        self._bus.publish(
            self._report(
                at=reading.at,
                title=f"Water leak at {place.location or place.name}",
                location=place.location,
                sensors=(reading.device_id,),
                evidence=(
                    IncidentEvidence(
                        reading.device_id, reading.measurement.value, True, None, reading.at
                    ),
                ),
                response_plan=self._plan(),
            )
        )
        _log.warning("water leak at %s: closing %d valve(s)", place.name, len(self._valves))

    async def _confirm_valve(self, valve: Place, mark: int, tg: asyncio.TaskGroup) -> None:
        try:
            outcome = await self._actuator.confirm(
                valve.id,
                CommandAction.CLOSE_VALVE,
                mark,
                (Measurement.VALVE, ValveState.CLOSED.value),
                on_retry=lambda n: _log.warning("valve %s: close attempt %d", valve.name, n),
            )
        finally:
            self._confirming.discard(valve.id)
        if outcome.result is ActionOutcome.OK:
            self._closed.add(valve.id)
            _log.info("valve %s confirmed closed", valve.name)
        else:
            _log.error(
                "valve %s did not close: %s (%s)", valve.name, outcome.result, outcome.detail
            )
        failed = outcome.result is not ActionOutcome.OK
        self._bus.publish(
            self._report(
                at=self._clock.now(),
                actions=(self._action(ActionKind.CLOSE_VALVE, valve.id, outcome),),
                title=f"Water leak — valve {valve.name} did not close" if failed else "",
                response_plan=self._plan(),
                escalated=failed,
            )
        )
        if failed and not self._escalated:
            self._escalated = True
            for siren in self._sirens:
                tg.create_task(self._sound(siren))

    async def _confirm_power_cut(self, circuit: Place, mark: int, tg: asyncio.TaskGroup) -> None:
        try:
            outcome = await self._actuator.confirm(
                circuit.id, CommandAction.CUT_POWER, mark, (Measurement.SWITCH, False)
            )
        finally:
            self._confirming.discard(circuit.id)
        failed = outcome.result is not ActionOutcome.OK
        if failed:
            self._power_failed.add(circuit.id)
            _log.error("circuit %s did not switch off: %s", circuit.name, outcome.result)
        else:
            self._power_failed.discard(circuit.id)
            self._closed.add(circuit.id)
        self._bus.publish(
            self._report(
                at=self._clock.now(),
                actions=(self._action(ActionKind.CUT_POWER, circuit.id, outcome),),
                title=f"Water leak — power to {circuit.location} did not switch off"
                if failed
                else "",
                response_plan=self._plan(),
                escalated=failed,
            )
        )
        if failed and not self._escalated:
            self._escalated = True
            for siren in self._sirens:
                tg.create_task(self._sound(siren))

    async def _sound(self, siren: Place) -> None:
        mark = self._actuator.send(siren.id, CommandAction.SIREN_ON)
        outcome = await self._actuator.confirm(
            siren.id, CommandAction.SIREN_ON, mark, (Measurement.SWITCH, True)
        )
        self._bus.publish(
            self._report(
                at=self._clock.now(),
                actions=(self._action(ActionKind.SIREN, siren.id, outcome),),
                escalated=True,
            )
        )

    # -- helpers -------------------------------------------------------------------------------

    def _place(self, device_id: str) -> Place:
        return self._places.get(device_id) or Place(device_id, device_id, None)

    def _wet_place(self) -> tuple[tuple[str, ...], Place]:
        """The wet sensors, and the place of the first (call only while one is wet)."""
        wet = tuple(sorted(self._wet))
        return wet, self._place(wet[0])

    def _plan(self) -> tuple[str, ...]:
        open_valves = {v.id for v in self._valves} - self._closed
        if not self._valves:
            first = PLAN_NO_VALVE
        elif open_valves - self._confirming:
            first = PLAN_VALVE_FAILED
        elif open_valves:
            first = PLAN_VALVES_CLOSING
        else:
            first = PLAN_VALVES_CLOSED
        power = tuple(
            (PLAN_POWER_FAILED if c.id in self._power_failed else PLAN_POWER_CUT).format(
                location=c.location
            )
            for c in self._power_cuts
            if c.id in self._power_failed or c.id in self._closed
        )
        return (first, *power, *PLAN_COMMON)

    def _action(self, kind: ActionKind, target: str, outcome: Outcome) -> IncidentAction:
        return IncidentAction(
            kind, target, self._clock.now(), outcome.result, outcome.attempts, outcome.detail
        )

    def _report(
        self,
        *,
        at: float,
        title: str = "",
        location: str | None = None,
        sensors: tuple[str, ...] = (),
        evidence: tuple[IncidentEvidence, ...] = (),
        actions: tuple[IncidentAction, ...] = (),
        response_plan: tuple[str, ...] = (),
        escalated: bool = False,
        opens_as: str = "",
    ) -> IncidentReport:
        return IncidentReport(
            key=IncidentKey.WATER_LEAK,
            emergency_type=EmergencyType.WATER_DAMAGE.value,
            severity=Severity.CRITICAL.value,
            title=title,
            location=location,
            source_id=RULE_ID,
            source_version=RULE_VERSION,
            at=at,
            sensors=sensors,
            evidence=evidence,
            actions=actions,
            response_plan=response_plan,
            escalated=escalated,
            opens_as=opens_as,
        )
