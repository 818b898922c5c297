"""The incident: its fields (as in the dispatch API contract), its lifecycle and how reports merge.

Pure code: no I/O. Every change returns a new `Incident` with `revision + 1`; the store writes it
together with its outbox row.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from hub.clock import parse_rfc3339, rfc3339


class EmergencyType(enum.StrEnum):
    WATER_DAMAGE = "water_damage"
    ELECTRICAL = "electrical"
    HVAC_FAILURE = "hvac_failure"
    SECURITY_BREACH = "security_breach"
    STRUCTURAL = "structural"
    DEVICE_HEALTH = "device_health"


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Status(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"


class DispatchStatus(enum.StrEnum):
    """What the cloud's dispatch decided (`cancelled` leaves the incident's own status alone)."""

    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


_DISPATCH_TO_STATUS: dict[DispatchStatus, Status | None] = {
    DispatchStatus.ACKNOWLEDGED: Status.ACKNOWLEDGED,
    DispatchStatus.DISPATCHED: Status.DISPATCHED,
    DispatchStatus.EN_ROUTE: Status.DISPATCHED,
    DispatchStatus.ON_SITE: Status.DISPATCHED,
    DispatchStatus.RESOLVED: Status.RESOLVED,
    DispatchStatus.CANCELLED: None,
}


class ActionKind(enum.StrEnum):
    CLOSE_VALVE = "close_valve"
    CUT_POWER = "cut_power"
    HVAC_OFF = "hvac_off"
    SIREN = "siren"
    NOTIFY = "notify"


class ActionOutcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


class SourceKind(enum.StrEnum):
    RULE = "rule"
    ANOMALY = "anomaly"


#: Most evidence items kept on one incident; a leak that reports for days must not grow it forever.
MAX_EVIDENCE = 50


@dataclass(frozen=True, slots=True)
class IncidentEvidence:
    sensor_id: str
    measurement: str
    value: float | bool | str
    unit: str | None
    at: float


@dataclass(frozen=True, slots=True)
class IncidentAction:
    action: ActionKind
    target: str
    at: float
    result: ActionOutcome
    attempts: int = 1
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Contractor:
    id: str
    name: str
    phone: str | None = None
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The latest dispatch update the cloud sent for an incident, mirrored on it."""

    status: DispatchStatus
    at: float
    contractor: Contractor | None = None
    eta: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    revision: int
    hub_id: str
    key: str
    emergency_type: EmergencyType
    severity: Severity
    status: Status
    title: str
    location: str | None
    detected_at: float
    updated_at: float
    resolved_at: float | None
    source_kind: SourceKind
    source_id: str
    source_version: str
    sensors: tuple[str, ...]
    evidence: tuple[IncidentEvidence, ...]
    actions: tuple[IncidentAction, ...]
    response_plan: tuple[str, ...]
    escalated: bool = False
    dispatch: Dispatch | None = None

    @property
    def is_open(self) -> bool:
        return self.status is not Status.RESOLVED


def new_incident(
    *,
    hub_id: str,
    key: str,
    emergency_type: EmergencyType,
    severity: Severity,
    title: str,
    location: str | None,
    source_id: str,
    source_version: str,
    at: float,
    source_kind: SourceKind = SourceKind.RULE,
) -> Incident:
    """A fresh incident at revision 0; `merge` brings it to revision 1 with the first report."""
    return Incident(
        id=str(uuid.uuid4()),
        revision=0,
        hub_id=hub_id,
        key=key,
        emergency_type=emergency_type,
        severity=severity,
        status=Status.OPEN,
        title=title,
        location=location,
        detected_at=at,
        updated_at=at,
        resolved_at=None,
        source_kind=source_kind,
        source_id=source_id,
        source_version=source_version,
        sensors=(),
        evidence=(),
        actions=(),
        response_plan=(),
    )


def merge(
    incident: Incident,
    *,
    at: float,
    severity: Severity,
    title: str,
    sensors: tuple[str, ...],
    evidence: tuple[IncidentEvidence, ...],
    actions: tuple[IncidentAction, ...],
    response_plan: tuple[str, ...],
    escalated: bool,
) -> Incident | None:
    """Fold a report into an incident. Returns the next revision, or None when nothing changed.

    Sensors are a union; evidence is appended (bounded by `MAX_EVIDENCE`, first items kept, as they
    explain the opening); actions are keyed by (action, target), the newest result winning; severity
    only ever rises; an escalation is never taken back.
    """
    new_sensors = incident.sensors + tuple(
        s for s in dict.fromkeys(sensors) if s not in incident.sensors
    )
    room = MAX_EVIDENCE - len(incident.evidence)
    new_evidence = incident.evidence + evidence[: max(room, 0)]
    by_target = {(a.action, a.target): a for a in incident.actions}
    for a in actions:
        by_target[(a.action, a.target)] = a
    new_actions = tuple(by_target.values())
    new_severity = max(incident.severity, severity, key=_SEVERITY_RANK.__getitem__)
    candidate = replace(
        incident,
        severity=new_severity,
        title=title or incident.title,
        sensors=new_sensors,
        evidence=new_evidence,
        actions=new_actions,
        response_plan=response_plan or incident.response_plan,
        escalated=incident.escalated or escalated,
    )
    if candidate == incident and incident.revision > 0:
        return None
    return replace(candidate, revision=incident.revision + 1, updated_at=at)


def set_status(incident: Incident, status: Status, *, at: float) -> Incident | None:
    """Move an incident to `status`; None when it already is there."""
    if incident.status is status:
        return None
    return replace(
        incident,
        status=status,
        revision=incident.revision + 1,
        updated_at=at,
        resolved_at=at if status is Status.RESOLVED else None,
    )


def apply_dispatch(incident: Incident, dispatch: Dispatch, *, at: float) -> Incident | None:
    """Mirror a dispatch update on the incident; its status follows the contract's mapping.

    None when nothing changes: the same update again (updates are applied idempotently) or one
    older than the dispatch already mirrored.
    """
    current = incident.dispatch
    if current is not None and (current == dispatch or dispatch.at < current.at):
        return None
    status = _DISPATCH_TO_STATUS[dispatch.status] or incident.status
    resolved_at = incident.resolved_at
    if status is Status.RESOLVED:
        resolved_at = resolved_at if incident.status is Status.RESOLVED else dispatch.at
    else:
        resolved_at = None
    return replace(
        incident,
        dispatch=dispatch,
        status=status,
        resolved_at=resolved_at,
        revision=incident.revision + 1,
        updated_at=max(at, incident.updated_at),
    )


def _dispatch_to_wire(d: Dispatch) -> dict[str, Any]:
    out: dict[str, Any] = {"status": d.status.value, "at": rfc3339(d.at)}
    if d.contractor is not None:
        c = d.contractor
        out["contractor"] = {
            "id": c.id,
            "name": c.name,
            "phone": c.phone,
            "eta": None if c.eta is None else rfc3339(c.eta),
        }
    if d.eta is not None:
        out["eta"] = rfc3339(d.eta)
    if d.note is not None:
        out["note"] = d.note
    return out


def _dispatch_from_wire(d: _Obj) -> Dispatch:
    c = d.opt_obj("contractor")
    return Dispatch(
        status=d.member("status", DispatchStatus),
        at=d.time("at"),
        contractor=None
        if c is None
        else Contractor(
            id=c.text("id"),
            name=c.text("name"),
            phone=c.opt_text("phone"),
            eta=c.opt_time("eta"),
        ),
        eta=d.opt_time("eta"),
        note=d.opt_text("note"),
    )


def to_wire(incident: Incident) -> dict[str, Any]:
    """The incident as the dispatch API and the local MQTT topic carry it."""
    return {
        "id": incident.id,
        "revision": incident.revision,
        "hub_id": incident.hub_id,
        "emergency_type": incident.emergency_type.value,
        "severity": incident.severity.value,
        "status": incident.status.value,
        "title": incident.title,
        "location": incident.location,
        "detected_at": rfc3339(incident.detected_at),
        "updated_at": rfc3339(incident.updated_at),
        "resolved_at": None if incident.resolved_at is None else rfc3339(incident.resolved_at),
        "source": {
            "kind": incident.source_kind.value,
            "id": incident.source_id,
            "version": incident.source_version,
        },
        "sensors": list(incident.sensors),
        "evidence": [
            {
                "sensor_id": e.sensor_id,
                "measurement": e.measurement,
                "value": e.value,
                "unit": e.unit,
                "at": rfc3339(e.at),
            }
            for e in incident.evidence
        ],
        "actions": [
            {
                "action": a.action.value,
                "target": a.target,
                "at": rfc3339(a.at),
                "result": a.result.value,
                "attempts": a.attempts,
                **({"detail": a.detail} if a.detail else {}),
            }
            for a in incident.actions
        ],
        "response_plan": list(incident.response_plan),
        "escalated": incident.escalated,
        **({} if incident.dispatch is None else {"dispatch": _dispatch_to_wire(incident.dispatch)}),
    }


class WireFormatError(ValueError):
    """Wire JSON that does not read as an incident; the message names the field and why."""


_E = TypeVar("_E", bound=enum.StrEnum)
_MISSING: Any = object()


def _what(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Obj:
    """One JSON object of an incident's wire form, read field by field with the types `to_wire`
    writes: anything else is a `WireFormatError` naming the field (`source.kind`, `actions[2]`)."""

    __slots__ = ("_data", "_where")

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise WireFormatError(f"{where or 'the incident'} is {_what(data)}, not an object")
        self._data: dict[str, Any] = data
        self._where = where

    def path(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        if name in self._data:
            return self._data[name]
        if default is _MISSING:
            raise WireFormatError(f"{self.path(name)} is missing")
        return default

    def _wrong(self, name: str, value: Any, expected: str) -> WireFormatError:
        return WireFormatError(f"{self.path(name)} is {_what(value)}, not {expected}")

    def text(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise self._wrong(name, value, "a string")
        return value

    def opt_text(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw(name) if required else self.raw(name, None)
        if value is not None and not isinstance(value, str):
            raise self._wrong(name, value, "a string or null")
        return value

    def integer(self, name: str, default: Any = _MISSING) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, value, "an integer")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self._wrong(name, value, "true or false")
        return value

    def time(self, name: str) -> float:
        value = self.text(name)
        try:
            return parse_rfc3339(value)
        except (ValueError, OverflowError, OSError) as err:
            raise WireFormatError(f"{self.path(name)} {value!r} is not a time ({err})") from err

    def opt_time(self, name: str, *, required: bool = False) -> float | None:
        value = self.raw(name) if required else self.raw(name, None)
        return None if value is None else self.time(name)

    def member(self, name: str, kind: type[_E]) -> _E:
        value = self.raw(name)
        if not isinstance(value, str) or value not in kind._value2member_map_:
            raise WireFormatError(f"{self.path(name)}: {value!r} is not a valid {kind.__name__}")
        return kind(value)

    def obj(self, name: str) -> _Obj:
        return _Obj(self.raw(name), self.path(name))

    def opt_obj(self, name: str) -> _Obj | None:
        value = self.raw(name, None)
        return None if value is None else _Obj(value, self.path(name))

    def items(self, name: str) -> list[Any]:
        value = self.raw(name)
        if not isinstance(value, list):
            raise self._wrong(name, value, "a list")
        return value

    def objs(self, name: str) -> list[_Obj]:
        return [_Obj(v, f"{self.path(name)}[{n}]") for n, v in enumerate(self.items(name))]

    def texts(self, name: str) -> tuple[str, ...]:
        values = self.items(name)
        for n, v in enumerate(values):
            if not isinstance(v, str):
                raise WireFormatError(f"{self.path(name)}[{n}] is {_what(v)}, not a string")
        return tuple(values)

    def value(self, name: str) -> float | bool | str:
        value = self.raw(name)
        if not isinstance(value, int | float | str):  # bool is an int
            raise self._wrong(name, value, "a number, true, false or a string")
        return value


def from_wire(data: Any, *, key: str) -> Incident:
    """Inverse of `to_wire` (the store keeps the wire JSON of each revision).

    Raises `WireFormatError` (a `ValueError` naming the field) for anything that does not read as an
    incident: not an object, a missing field, a wrong type, an unknown value (one a newer release
    writes), a time that is not one. Nothing else.
    """
    d = _Obj(data, "")
    source = d.obj("source")
    dispatch = d.opt_obj("dispatch")
    return Incident(
        id=d.text("id"),
        revision=d.integer("revision"),
        hub_id=d.text("hub_id"),
        key=key,
        emergency_type=d.member("emergency_type", EmergencyType),
        severity=d.member("severity", Severity),
        status=d.member("status", Status),
        title=d.text("title"),
        location=d.opt_text("location", required=True),
        detected_at=d.time("detected_at"),
        updated_at=d.time("updated_at"),
        resolved_at=d.opt_time("resolved_at", required=True),
        source_kind=source.member("kind", SourceKind),
        source_id=source.text("id"),
        source_version=source.text("version"),
        sensors=d.texts("sensors"),
        evidence=tuple(
            IncidentEvidence(
                sensor_id=e.text("sensor_id"),
                measurement=e.text("measurement"),
                value=e.value("value"),
                unit=e.opt_text("unit", required=True),
                at=e.time("at"),
            )
            for e in d.objs("evidence")
        ),
        actions=tuple(
            IncidentAction(
                action=a.member("action", ActionKind),
                target=a.text("target"),
                at=a.time("at"),
                result=a.member("result", ActionOutcome),
                attempts=a.integer("attempts", 1),
                detail=a.opt_text("detail"),
            )
            for a in d.objs("actions")
        ),
        response_plan=d.texts("response_plan"),
        escalated=d.flag("escalated", False),
        dispatch=None if dispatch is None else _dispatch_from_wire(dispatch),
    )


def to_json(incident: Incident) -> bytes:
    """The wire form as compact UTF-8 JSON bytes (what MQTT and the outbox carry)."""
    return json.dumps(to_wire(incident), separators=(",", ":"), ensure_ascii=False).encode()
