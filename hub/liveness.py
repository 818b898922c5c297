"""Learned liveness: how often each device normally reports, and which ones have gone quiet.

Pure logic with times passed in (the service feeds it and asks `assess` on a timer). Every time
it is given is on one clock that never jumps (`Clock.monotonic()`, the arrival of a report, not its
wall-clock stamp): an NTP step at boot on a Pi without a real-time clock must neither freeze nor
fire every timeout. What outlives a restart is only durations (the intervals).

* **Interval.** The median of a device's last `_GAPS` report gaps; reports closer than `_BURST_S`
  are one burst (a Tasmota's SENSOR and STATE at each TelePeriod, rtl_433's repeated frames).
  Until `_MIN_GAPS` gaps are known the device is `learning` and the kind's ceiling is its timeout.
  The interval rises at once but falls slowly (by half per `_INTERVAL_HALF_LIFE_S` at most), so a
  burst of changes (a leak being mopped up) does not cut a sleepy sensor's timeout to the floor.
* **Timeout.** `multiple` times the interval, clamped to the kind's floor and ceiling. The ceiling
  keeps a device that was failing while the hub learned from teaching it that silence is normal;
  the floor keeps a chatty device from being called silent after one lost message. Kinds follow
  Zigbee2MQTT's availability defaults: battery devices (which sleep) may stay quiet up to 25 h,
  mains devices up to 1 h. A device is `battery` once it reports a battery measurement, and until
  the hub knows otherwise, unless its transport is mains by nature (see `DeviceProfile.mains`).
* **Bridges.** A device reaches the hub through bridges (the MQTT broker, the Zigbee2MQTT bridge,
  a serial port, the Bluetooth adapter, the rtl_433 receiver). A bridge is down when it said so
  for longer than `_BRIDGE_GRACE_S`; a bridge that never says (`inferred_bridges`: rtl_433 has no
  last will) is down when it has two or more devices and every one of them is silent. The devices
  behind a down bridge are `bridge_down`, not `silent`, and a bridge behind a down bridge is not
  reported either: one problem, reported once.
* **Battery.** Low below `battery_low_pct` or while the device's own low flag is set (both are
  kept: a device sending both is low when either says so); the percentage is ok again at
  `battery_low_pct + 10` (hysteresis, so a battery hovering at the threshold does not flap).
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.events import Reading
from hub.measurements import Measurement

_GAPS = 16
_MIN_GAPS = 3
_BURST_S = 2.0
_BRIDGE_GRACE_S = 60.0
_BATTERY_HYSTERESIS_PCT = 10.0
_INTERVAL_HALF_LIFE_S = 24 * 3600.0


class Health(enum.StrEnum):
    LEARNING = "learning"  # seen recently; its interval is not known yet
    OK = "ok"
    SILENT = "silent"  # quiet for longer than its timeout
    OFFLINE = "offline"  # it (or its own last will) said it is offline
    BRIDGE_DOWN = "bridge_down"  # quiet because the bridge it comes through is down


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    floor_s: float
    ceiling_s: float


BATTERY = Kind("battery", floor_s=30 * 60.0, ceiling_s=25 * 3600.0)
MAINS = Kind("mains", floor_s=2 * 60.0, ceiling_s=3600.0)


@dataclass(frozen=True, slots=True)
class _Memory:
    interval_s: float | None
    measurements: frozenset[str]


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What the configuration says about a device, for liveness."""

    bridges: tuple[str, ...] = ()  # outermost first, e.g. ("mqtt", "zigbee2mqtt")
    mains: bool = False  # its transport is mains-powered by nature (Shelly, Tasmota, meters)
    critical: bool = False  # an actuator, or a device announced with a leak or smoke sensor:
    # silence is a safety problem even before it reports


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    health: Health
    quiet_s: float | None  # since its last report; `None` before the first one
    expected_interval_s: float | None
    timeout_s: float
    battery_low: bool
    critical: bool  # an actuator, or a device that has reported a leak or smoke state
    bridge: str | None  # the down bridge when `health` is `bridge_down`


@dataclass(frozen=True, slots=True)
class Assessment:
    devices: dict[str, DeviceStatus]
    bridges_down: dict[str, str]  # bridge id -> why ("offline" or "all its devices are silent")


@dataclass(slots=True)
class _Track:
    profile: DeviceProfile
    since: float  # when tracking began: silence is counted from here until the first report
    last_seen: float | None = None
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=_GAPS))
    interval: float | None = None  # the learned interval (see `_learn`)
    interval_at: float | None = None  # when it was last updated (it decays from there)
    battery: bool = False
    battery_pct_low: bool = False  # from the percentage, with hysteresis
    battery_flag_low: bool = False  # the device's own flag
    reports_hazard: bool = False
    online: bool | None = None


_BATTERY_MEASUREMENTS = frozenset({Measurement.BATTERY, Measurement.BATTERY_LOW})
_HAZARD_MEASUREMENTS = frozenset({Measurement.WATER_LEAK, Measurement.SMOKE})


class LivenessTracker:
    def __init__(
        self,
        profiles: Mapping[str, DeviceProfile],
        *,
        start: float,
        multiple: float = 3.0,
        battery_low_pct: float = 15.0,
        inferred_bridges: frozenset[str] = frozenset(),
        max_devices: int = 5000,
    ) -> None:
        self._tracks = {d: _Track(p, start) for d, p in profiles.items()}
        self._start = start
        self._multiple = multiple
        self._battery_low = battery_low_pct
        self._max = max_devices
        self._bridge_offline: dict[str, float] = {}  # bridge id -> since when it said offline
        self._bridge_ids = {b for p in profiles.values() for b in p.bridges}
        self._inferred = inferred_bridges
        self._memory: dict[str, _Memory] = {}  # remembered, for devices not (yet) tracked

    # -- input ----------------------------------------------------------------------------------

    def add(self, device_id: str, profile: DeviceProfile, at: float) -> None:
        """A device learned at run time (discovered); bounded by `max_devices`."""
        if device_id not in self._tracks and len(self._tracks) < self._max:
            self._tracks[device_id] = _Track(profile, at)
            self._bridge_ids.update(profile.bridges)
            memory = self._memory.pop(device_id, None)
            if memory is not None:
                self.remember(device_id, memory.interval_s, memory.measurements)

    def forget(self, device_id: str) -> bool:
        """A discovered device its ecosystem no longer has (renamed, removed): stop watching it.
        True when it was tracked."""
        self._memory.pop(device_id, None)
        return self._tracks.pop(device_id, None) is not None

    def knows(self, device_id: str) -> bool:
        """Tracked, or remembered from an earlier run and perhaps discovered again soon."""
        return device_id in self._tracks or device_id in self._memory

    def remember(
        self, device_id: str, interval_s: float | None, measurements: frozenset[str]
    ) -> None:
        """Restore what an earlier run learned: the interval, and whether the device has a
        battery or reports a hazard (a leak sensor already dead at start-up is still critical).
        Not its last report: the hub was not listening meanwhile, so silence counts from now.
        A device not tracked yet (discovered later, after MQTT is up) gets it when it is added."""
        track = self._tracks.get(device_id)
        if track is None:
            self._memory[device_id] = _Memory(interval_s, measurements)
            return
        if interval_s is not None and interval_s > 0 and not track.gaps:
            track.gaps.extend([interval_s] * _MIN_GAPS)
            track.interval, track.interval_at = interval_s, track.since
        track.battery |= bool(measurements & {m.value for m in _BATTERY_MEASUREMENTS})
        track.reports_hazard |= bool(measurements & {m.value for m in _HAZARD_MEASUREMENTS})

    def reading(self, reading: Reading, at: float) -> None:
        """A report, heard at `at` (the tracker's clock, not the reading's wall-clock stamp)."""
        track = self._tracks.get(reading.device_id)
        if track is None:
            return
        self._seen(track, at)
        m = reading.measurement
        if m in _BATTERY_MEASUREMENTS:
            track.battery = True
            if m is Measurement.BATTERY_LOW and isinstance(reading.value, bool):
                track.battery_flag_low = reading.value
            elif m is Measurement.BATTERY and isinstance(reading.value, float):
                was = track.battery_pct_low
                limit = self._battery_low + (_BATTERY_HYSTERESIS_PCT if was else 0)
                track.battery_pct_low = reading.value < limit
        elif m in _HAZARD_MEASUREMENTS:
            track.reports_hazard = True

    def availability(self, subject: str, online: bool, at: float) -> None:
        """A device's or a bridge's own online/offline message."""
        if subject in self._bridge_ids:
            if online:
                self._bridge_offline.pop(subject, None)
            else:
                self._bridge_offline.setdefault(subject, at)
            return
        track = self._tracks.get(subject)
        if track is not None:
            track.online = online
            if online:
                self._seen(track, at)

    @staticmethod
    def _seen(track: _Track, at: float) -> None:
        last = track.last_seen
        if last is not None:
            gap = at - last
            if 0 <= gap < _BURST_S:
                return  # same burst: keep the burst's first moment as the report time
            if gap > 0:  # a gap below 0 (a caller's clock went back) is no gap: start afresh
                track.gaps.append(gap)
                _learn(track, at)
        track.last_seen = at

    # -- output ---------------------------------------------------------------------------------

    def expected_interval(self, device_id: str) -> float | None:
        track = self._tracks.get(device_id)
        return None if track is None else track.interval

    def assess(self, now: float) -> Assessment:
        quiet: dict[str, tuple[Health, float | None, float]] = {}
        for device_id, track in self._tracks.items():
            interval = self.expected_interval(device_id)
            kind = MAINS if track.profile.mains and not track.battery else BATTERY
            timeout = (
                kind.ceiling_s
                if interval is None
                else min(max(self._multiple * interval, kind.floor_s), kind.ceiling_s)
            )
            reference = track.last_seen if track.last_seen is not None else track.since
            if track.online is False:
                health = Health.OFFLINE
            elif now - reference > timeout:
                health = Health.SILENT
            else:
                health = Health.LEARNING if interval is None else Health.OK
            quiet[device_id] = (health, interval, timeout)
        down = self._bridges_down(now, quiet)
        devices: dict[str, DeviceStatus] = {}
        for device_id, (own_health, interval, timeout) in quiet.items():
            track = self._tracks[device_id]
            bridge = next((b for b in track.profile.bridges if b in down), None)
            behind_bridge = bridge is not None and own_health in (Health.SILENT, Health.OFFLINE)
            health = Health.BRIDGE_DOWN if behind_bridge else own_health
            devices[device_id] = DeviceStatus(
                device_id=device_id,
                health=health,
                quiet_s=None if track.last_seen is None else now - track.last_seen,
                expected_interval_s=interval,
                timeout_s=timeout,
                battery_low=track.battery_pct_low or track.battery_flag_low,
                critical=track.profile.critical or track.reports_hazard,
                bridge=bridge if health is Health.BRIDGE_DOWN else None,
            )
        return Assessment(devices, down)

    def _bridges_down(
        self, now: float, quiet: Mapping[str, tuple[Health, float | None, float]]
    ) -> dict[str, str]:
        down = {
            b: "offline"
            for b, since in self._bridge_offline.items()
            if now - since >= _BRIDGE_GRACE_S
        }
        members: dict[str, list[Health]] = {}
        outer: dict[str, set[str]] = {}
        for device_id, track in self._tracks.items():
            for i, b in enumerate(track.profile.bridges):
                members.setdefault(b, []).append(quiet[device_id][0])
                outer.setdefault(b, set()).update(track.profile.bridges[:i])
        for b in self._inferred & members.keys():
            healths = members[b]
            if b not in down and len(healths) >= 2 and all(h is Health.SILENT for h in healths):
                down[b] = "all its devices are silent"
        return {b: why for b, why in down.items() if not outer.get(b, set()) & down.keys()}


def _learn(track: _Track, at: float) -> None:
    """The interval after a new gap: the median of the recent gaps, or, while that is lower than
    what was learned, what was learned decayed by half per `_INTERVAL_HALF_LIFE_S` (a burst of
    reports must not make the next normal heartbeat look late)."""
    if len(track.gaps) < _MIN_GAPS:
        return
    median = statistics.median(track.gaps)
    if track.interval is not None and track.interval_at is not None:
        elapsed = max(at - track.interval_at, 0.0)
        median = max(median, track.interval * 0.5 ** (elapsed / _INTERVAL_HALF_LIFE_S))
    track.interval, track.interval_at = median, at
