"""Device health: a silent safety device, a low battery or a down bridge opens a `device_health`
incident; it resolves when the device (or bridge) recovers.

One incident per device and one per bridge (keys `device_health:<id>`, `bridge_health:<id>`), so
fifty sensors behind a dead Zigbee bridge are one incident, not fifty (liveness already calls them
`bridge_down`, not `silent`). A silent device that is not critical (a thermometer) is shown by
`homeguard-hub sensors` but opens no incident; a low battery opens one for any device, because a
battery is a task for the homeowner.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.bus import Bus, Overflow
from hub.events import HealthChanged, IncidentKey, IncidentReport, scoped_key
from hub.incident import EmergencyType, IncidentEvidence, Severity

RULE_ID = "device_health"
RULE_VERSION = "1"

_SILENCE = frozenset({"silent", "offline"})

PLAN_SILENT = (
    "Check the device: replace its battery or plug it back in, and bring it near its bridge.",
    "Until it reports again the hub cannot protect what it watches.",
)
PLAN_BATTERY = ("Replace the device's battery soon.",)
PLAN_BRIDGE = (
    "Check that the bridge is powered and connected (USB stick, radio receiver, Bluetooth "
    "adapter or MQTT broker); every device behind it is unheard until it is back.",
)


class DeviceHealthRule:
    def __init__(self, *, bus: Bus, locations: Mapping[str, str | None]) -> None:
        self._bus = bus
        self._locations = locations
        self._sub = bus.subscribe("device-health", (HealthChanged,), overflow=Overflow.KEEP_ALL)

    async def run(self) -> None:
        async for batch in self._sub.batches():
            for change in batch:
                self._bus.publish(report_for(change, self._locations.get(change.subject)))


def report_for(change: HealthChanged, location: str | None) -> IncidentReport:
    """The incident report a health change makes: open/merge, or resolve when it is healthy."""
    problems = set(change.problems)
    plan: tuple[str, ...]
    if change.bridge:
        kind, severity, plan = IncidentKey.BRIDGE_HEALTH, Severity.HIGH, PLAN_BRIDGE
        title = f"Bridge {change.subject} is down"
        wanted = bool(problems)
    else:
        silent = bool(problems & _SILENCE) and change.critical
        battery = "battery_low" in problems
        kind = IncidentKey.DEVICE_HEALTH
        severity = Severity.HIGH if silent else Severity.LOW
        plan = (PLAN_SILENT if silent else ()) + (PLAN_BATTERY if battery else ())
        what = " and ".join(
            w for w, on in (("is silent", silent), ("has a low battery", battery)) if on
        )
        title = f"{change.subject} {what}"
        wanted = silent or battery
    state = ",".join(change.problems) or "ok"
    return IncidentReport(
        key=scoped_key(kind, change.subject),
        emergency_type=EmergencyType.DEVICE_HEALTH.value,
        severity=severity.value,
        title=title if wanted else "",
        location=location,
        source_id=RULE_ID,
        source_version=RULE_VERSION,
        at=change.at,
        sensors=(change.subject,),
        evidence=(IncidentEvidence(change.subject, "health", state, None, change.at),),
        response_plan=plan,
        resolve=not wanted,
    )
