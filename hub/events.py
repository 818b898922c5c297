"""Typed events that travel on the bus. Frozen, slotted dataclasses: cheap to make, safe to share.

Times are POSIX seconds (float) from the hub's `Clock`; they become RFC 3339 only at the edges.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hub.incident import Incident, IncidentAction, IncidentEvidence
from hub.measurements import Measurement

Value = float | bool | str


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of one device at one moment."""

    device_id: str
    measurement: Measurement
    value: Value
    at: float


@dataclass(frozen=True, slots=True)
class Availability:
    """A device (or its bridge) said it is online or offline."""

    device_id: str
    online: bool
    at: float


@dataclass(frozen=True, slots=True)
class DeviceDiscovered:
    """An ecosystem announced a device the hub did not know from its configuration."""

    device_id: str
    adapter: str
    name: str
    model: str | None
    exposes: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class DeviceForgotten:
    """An ecosystem no longer has a device the hub learned from it (renamed or removed there)."""

    device_id: str
    adapter: str
    at: float


class CommandAction(enum.StrEnum):
    CLOSE_VALVE = "close_valve"
    SIREN_ON = "siren_on"
    CUT_POWER = "cut_power"
    READ_STATE = "read_state"


@dataclass(frozen=True, slots=True)
class Command:
    """Ask an actuator to do something, through the adapter it speaks."""

    command_id: str
    device_id: str
    action: CommandAction
    at: float


@dataclass(frozen=True, slots=True)
class CommandSent:
    """A driver handed a command to its transport (`ok`) or could not (`error` says why)."""

    command_id: str
    device_id: str
    action: CommandAction
    ok: bool
    error: str | None
    at: float


class IncidentKey(enum.StrEnum):
    """Which open incident a report belongs to: one open incident per key at a time.

    Per-device and per-stream incidents use the keys the functions below build from these.
    """

    WATER_LEAK = "water_leak"
    DEVICE_HEALTH = "device_health"
    BRIDGE_HEALTH = "bridge_health"
    ANOMALY = "anomaly"


def scoped_key(kind: IncidentKey, subject: str) -> str:
    """The key of the one open incident of `kind` about `subject` (a device, bridge or stream)."""
    return f"{kind.value}:{subject}"


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """A rule's view of an incident: open it, or merge into the open one of the same key.

    Empty tuples and `None` mean "nothing new"; the incident service does the merging, in the same
    transaction as the outbox row, so the rule never reads the database.
    """

    key: str  # an `IncidentKey`, or a `scoped_key` for per-device and per-stream incidents
    emergency_type: str
    severity: str
    title: str
    location: str | None
    source_id: str
    source_version: str
    at: float
    sensors: tuple[str, ...] = ()
    evidence: tuple[IncidentEvidence, ...] = ()
    actions: tuple[IncidentAction, ...] = ()
    response_plan: tuple[str, ...] = ()
    escalated: bool = False
    #: The cause is gone: resolve the open incident of `key` (with this report's evidence), if any.
    resolve: bool = False
    source_kind: str = "rule"  # or "anomaly": a model, not a fixed rule, saw it
    #: For an untitled report (a follow-up) of an emergency still going on: when no incident of
    #: `key` is open (the homeowner resolved it meanwhile), open one with this title instead of
    #: adding to the resolved one. An open incident keeps its own title.
    opens_as: str = ""


@dataclass(frozen=True, slots=True)
class IncidentChanged:
    """An incident was written (a new revision is durable, with its outbox row)."""

    incident: Incident
    at: float = field(default=0.0)


@dataclass(frozen=True, slots=True)
class MaintenanceTask:
    """A preventive-maintenance task from the cloud's planner (the contract's `MaintenanceTask`)."""

    id: str
    title: str
    system: str
    due: str  # a calendar date, `YYYY-MM-DD`
    priority: str
    every_days: int | None = None
    every_runtime_h: float | None = None
    estimated_cost: float | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceTaskReceived:
    """The cloud sent a maintenance task, to be merged into the local schedule (by `task.id`)."""

    task: MaintenanceTask
    at: float


@dataclass(frozen=True, slots=True)
class AnomalyScore:
    """An anomaly model's score for one stream (or one system's streams) at one moment.

    `stream` is `<device_id>/<measurement>` for a univariate model and the system's name for a
    multivariate one; `system` is the emergency type an incident about it would have
    (`water_damage`, `electrical`, `hvac_failure`). `score` is in [0, 1]; at or above `threshold`
    (the model's operating threshold) the reading is anomalous.
    """

    stream: str
    system: str
    model: str
    model_version: str
    score: float
    threshold: float
    at: float


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """A device's or a bridge's problems changed (liveness, battery); empty `problems`: healthy.

    Device problems are `silent`, `offline` and `battery_low`; a bridge's is `down`. `critical`
    marks a device whose silence is a safety problem (an actuator, a leak or smoke sensor);
    `detail` is one human sentence for an incident's evidence.
    """

    subject: str
    bridge: bool
    problems: tuple[str, ...]
    critical: bool
    detail: str
    at: float


Event = (
    Reading
    | Availability
    | DeviceDiscovered
    | DeviceForgotten
    | Command
    | CommandSent
    | IncidentReport
    | IncidentChanged
    | MaintenanceTaskReceived
    | AnomalyScore
    | HealthChanged
)
