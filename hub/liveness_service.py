"""Feeds the liveness tracker from the bus, assesses it on a timer, and announces what changed.

Readings and availability reach the tracker as direct bus handlers (a dict lookup and an append per
reading: exact, and cheaper than a queue), timed on `Clock.monotonic()` as they arrive: wall-clock
time is only for what is announced. Every `interval_s` the tracker is assessed: a device or
bridge whose problems changed is announced as `HealthChanged` (the device-health rule turns that
into incidents), and the devices' health is written for `homeguard-hub sensors`.

At start-up the device-health incidents still open from the last run are taken back as problems
of unknown shape, so the first assessment announces each subject (and resolves what recovered). A
device its ecosystem forgets (`DeviceForgotten`) is dropped and announced healthy, which resolves
its incident.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hub.bus import Bus
from hub.clock import Clock, duration
from hub.errors import StoreError
from hub.events import (
    Availability,
    DeviceDiscovered,
    DeviceForgotten,
    HealthChanged,
    IncidentKey,
    Reading,
    scoped_key,
)
from hub.liveness import Assessment, DeviceProfile, DeviceStatus, Health, LivenessTracker
from hub.store import DbWorker
from hub.store import incidents as incidents_repo
from hub.store import readings as repo

_log = logging.getLogger(__name__)

_DEVICE_PROBLEMS = {Health.SILENT: "silent", Health.OFFLINE: "offline"}
#: The problems of a subject whose incident was open at start-up: never equal to a real assessment.
_UNKNOWN = ("unknown",)
#: Open incidents read back at start-up, at most (more than every device and bridge there can be).
_OPEN_AT_RESTORE = 100_000


class LivenessService:
    def __init__(
        self,
        *,
        bus: Bus,
        db: DbWorker,
        clock: Clock,
        tracker: LivenessTracker,
        discovered_profile: Callable[[DeviceDiscovered], DeviceProfile | None],
        interval_s: float = 30.0,
    ) -> None:
        self._bus = bus
        self._db = db
        self._clock = clock
        self._tracker = tracker
        self._discovered_profile = discovered_profile
        self._interval = interval_s
        self._problems: dict[tuple[str, bool], tuple[str, ...]] = {}
        self._saved: dict[str, repo.HealthRow] = {}
        bus.handle(Reading, lambda r: tracker.reading(r, clock.monotonic()))
        bus.handle(
            Availability,
            lambda a: tracker.availability(a.device_id, a.online, clock.monotonic()),
        )
        bus.handle(DeviceDiscovered, self._discovered)
        bus.handle(DeviceForgotten, self._forgotten)

    def _discovered(self, event: DeviceDiscovered) -> None:
        profile = self._discovered_profile(event)
        if profile is not None:  # None: announced, but not read (a neighbour's BLE sensor)
            self._tracker.add(event.device_id, profile, self._clock.monotonic())

    def _forgotten(self, event: DeviceForgotten) -> None:
        self._tracker.forget(event.device_id)
        self._saved.pop(event.device_id, None)
        if self._problems.pop((event.device_id, False), ()):
            self._unwatched(event.device_id, f"is no longer in {event.adapter}", event.at)

    async def run(self) -> None:
        await self.restore()
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def restore(self) -> None:
        """Take back what earlier runs learned (intervals; battery and hazard sensors), and the
        health incidents still open (so the first assessment confirms or resolves each)."""
        try:
            memory = await self._db.run(repo.liveness_memory)
            open_incidents = await self._db.run(
                lambda db: incidents_repo.list_incidents(db, open_only=True, limit=_OPEN_AT_RESTORE)
            )
        except StoreError as err:
            _log.warning("cannot read what liveness learned before (%s); learning anew", err)
            return
        for m in memory:
            self._tracker.remember(m.device_id, m.expected_interval_s, m.measurements)
        prefixes = {
            scoped_key(IncidentKey.DEVICE_HEALTH, ""): False,
            scoped_key(IncidentKey.BRIDGE_HEALTH, ""): True,
        }
        for incident in open_incidents:
            for prefix, bridge in prefixes.items():
                if incident.key.startswith(prefix):
                    self._problems.setdefault((incident.key[len(prefix) :], bridge), _UNKNOWN)

    async def check(self) -> Assessment:
        """Assess now; announce changes and save the devices' health (also what tests call)."""
        now = self._clock.now()
        assessment = self._tracker.assess(self._clock.monotonic())
        for status in assessment.devices.values():
            self._announce(status.device_id, False, _device_problems(status), status, now)
        for (subject, is_bridge), problems in list(self._problems.items()):
            if not is_bridge and problems == _UNKNOWN and not self._tracker.knows(subject):
                # open before the restart, and the device is gone (no longer configured)
                del self._problems[(subject, is_bridge)]
                self._unwatched(subject, "is no longer a known device", now)
        for bridge in self._known_bridges(assessment):
            why = assessment.bridges_down.get(bridge)
            problems = ("down",) if why is not None else ()
            self._announce_bridge(bridge, problems, why, now)
        await self._save(assessment)
        return assessment

    def _unwatched(self, device_id: str, why: str, at: float) -> None:
        """Announce a device with an open problem healthy (its incident resolves), saying why it
        is not watched any more."""
        detail = f"{device_id} {why}: not watched any more"
        self._bus.publish(HealthChanged(device_id, False, (), False, detail, at))

    def _known_bridges(self, assessment: Assessment) -> set[str]:
        return set(assessment.bridges_down) | {s for s, bridge in self._problems if bridge}

    def _announce(
        self,
        subject: str,
        bridge: bool,
        problems: tuple[str, ...],
        status: DeviceStatus,
        now: float,
    ) -> None:
        if self._problems.get((subject, bridge), ()) == problems:
            return
        self._problems[(subject, bridge)] = problems
        self._bus.publish(
            HealthChanged(subject, bridge, problems, status.critical, _describe(status), now)
        )

    def _announce_bridge(
        self, bridge: str, problems: tuple[str, ...], why: str | None, now: float
    ) -> None:
        if self._problems.get((bridge, True), ()) == problems:
            return
        self._problems[(bridge, True)] = problems
        detail = f"bridge {bridge} is down: {why}" if why else f"bridge {bridge} is back"
        self._bus.publish(HealthChanged(bridge, True, problems, True, detail, now))

    async def _save(self, assessment: Assessment) -> None:
        rows = [
            repo.HealthRow(s.device_id, s.health.value, s.expected_interval_s, s.timeout_s)
            for s in assessment.devices.values()
        ]
        changed = [r for r in rows if self._saved.get(r.device_id) != r]
        if not changed:
            return
        try:
            await self._db.run(repo.save_health, changed)
        except StoreError as err:
            _log.warning("cannot save device health (%s); will try again", err)
            return
        self._saved.update((r.device_id, r) for r in changed)


def _device_problems(status: DeviceStatus) -> tuple[str, ...]:
    problems = [p for h, p in _DEVICE_PROBLEMS.items() if status.health is h]
    if status.battery_low:
        problems.append("battery_low")
    return tuple(problems)


def _describe(s: DeviceStatus) -> str:
    parts = []
    if s.health in _DEVICE_PROBLEMS:
        expected = (
            f"expected every {duration(s.expected_interval_s)}"
            if s.expected_interval_s is not None
            else "its report interval not learned yet"
        )
        parts.append(
            f"{s.device_id} is {s.health.value}: no report for over {duration(s.timeout_s)} "
            f"({expected})"
        )
    if s.battery_low:
        parts.append(f"{s.device_id} reports a low battery")
    return "; ".join(parts) or f"{s.device_id} is healthy again"
