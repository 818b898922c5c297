"""Pydantic models of the dispatch API's payloads, as the reference server validates them.

Hub payloads allow unknown fields ("servers ignore fields they do not know"); the operator's own
endpoint forbids them, so a typo in a hand-written update is an error rather than a silent no-op.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

__all__ = [
    "MAX_ITEMS",
    "DispatchStatus",
    "DispatchUpdateIn",
    "EmergencyType",
    "Heartbeat",
    "Incident",
    "IncidentBatch",
    "MaintenanceTask",
    "MaintenanceUpdateIn",
    "OperatorUpdate",
    "Rollup",
    "TelemetryBatch",
    "describe",
    "rfc3339",
]

#: Most items in one batch (incidents or rollups).
MAX_ITEMS = 200

_DATE = r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_RFC3339_UTC = re.compile(rf"^{_DATE}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,9}})?Z$")
_ISO_DATE = re.compile(rf"^{_DATE}$")


def _utc_timestamp(value: str) -> str:
    if not _RFC3339_UTC.match(value):
        raise ValueError("must be an RFC 3339 UTC timestamp ending in Z, e.g. 2026-01-02T03:04:05Z")
    try:
        datetime.fromisoformat(value[:19])
    except ValueError as err:
        raise ValueError(f"not a valid date and time: {err}") from err
    return value


def _whole(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 (as JSON Schema says); 3.5 stays invalid."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Timestamp = Annotated[str, AfterValidator(_utc_timestamp)]
#: An integer in JSON's sense: 3 or 3.0, never "3" or true.
Int = Annotated[int, BeforeValidator(_whole)]
NonEmpty = Annotated[str, Field(min_length=1)]


def rfc3339(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp with `Z`, millisecond precision."""
    text = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


EmergencyType = Literal[
    "water_damage", "electrical", "hvac_failure", "security_breach", "structural", "device_health"
]
Severity = Literal["low", "medium", "high", "critical"]
IncidentStatus = Literal["open", "acknowledged", "dispatched", "resolved"]
DispatchStatus = Literal[
    "acknowledged", "dispatched", "en_route", "on_site", "resolved", "cancelled"
]


class _Open(BaseModel):
    """A hub payload: unknown fields are kept and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Closed(BaseModel):
    """An operator payload: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Source(_Open):
    kind: Literal["rule", "anomaly"]
    id: NonEmpty
    version: str


class Evidence(_Open):
    sensor_id: NonEmpty
    measurement: NonEmpty
    value: float | int | bool | str | None
    unit: str | None
    at: Timestamp


class Action(_Open):
    action: Literal["close_valve", "cut_power", "hvac_off", "siren", "notify"]
    target: str | None
    at: Timestamp
    result: Literal["ok", "failed", "timeout"]


class Contractor(_Open):
    id: NonEmpty
    name: NonEmpty
    phone: str | None = None
    eta: Timestamp | None = None


class DispatchMirror(_Open):
    status: DispatchStatus
    contractor: Contractor | None = None
    eta: Timestamp | None = None
    note: str | None = None
    at: Timestamp


class Incident(_Open):
    id: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ),
    ]
    revision: Annotated[Int, Field(ge=1)]
    hub_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{3,64}$")]
    emergency_type: EmergencyType
    severity: Severity
    status: IncidentStatus
    title: NonEmpty
    location: str | None
    detected_at: Timestamp
    updated_at: Timestamp
    resolved_at: Timestamp | None
    source: Source
    sensors: list[str]
    evidence: list[Evidence]
    actions: list[Action]
    response_plan: list[str]
    dispatch: DispatchMirror | None = None


class IncidentBatch(BaseModel):
    """Only the envelope: each item is validated on its own so one bad item rejects only itself."""

    model_config = ConfigDict(extra="allow", strict=True)
    incidents: Annotated[list[Any], Field(min_length=1)]


class SensorCounts(_Open):
    total: Annotated[Int, Field(ge=0)]
    online: Annotated[Int, Field(ge=0)]


class Heartbeat(_Open):
    sent_at: Timestamp
    version: NonEmpty
    uptime_s: Annotated[float, Field(ge=0)]
    outbox_depth: Annotated[Int, Field(ge=0)]
    open_incidents: Annotated[Int, Field(ge=0)]
    sensors: SensorCounts


class Rollup(_Open):
    sensor_id: NonEmpty
    measurement: NonEmpty
    unit: str | None
    period_start: Timestamp
    period_s: Annotated[Int, Field(gt=0)]
    count: Annotated[Int, Field(ge=0)]
    min: float | None
    max: float | None
    mean: float | None
    last: float | None


class TelemetryBatch(_Open):
    rollups: Annotated[list[Any], Field(min_length=1)]


def _iso_date(value: str) -> str:
    if not _ISO_DATE.match(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as err:
        raise ValueError(f"not a valid date: {err}") from err
    return value


class MaintenanceTask(_Closed):
    id: NonEmpty
    title: NonEmpty
    system: Literal["hvac", "plumbing", "electrical", "water_heater", "roof", "appliance", "safety"]
    due: Annotated[str, AfterValidator(_iso_date)]
    every_days: Annotated[Int, Field(gt=0)] | None = None
    every_runtime_h: Annotated[float, Field(gt=0)] | None = None
    priority: Literal["low", "medium", "high"]
    estimated_cost: Annotated[float, Field(ge=0)] | None = None
    notes: str | None = None


class DispatchUpdateIn(_Closed):
    """A dispatch update as the operator posts it: the server assigns `cursor` (and `at` if absent)."""

    type: Literal["dispatch"]
    incident_id: NonEmpty
    status: DispatchStatus
    contractor: Contractor | None = None
    note: str | None = None
    at: Timestamp | None = None


class MaintenanceUpdateIn(_Closed):
    type: Literal["maintenance"]
    task: MaintenanceTask
    at: Timestamp | None = None


class OperatorUpdate(BaseModel):
    update: Annotated[DispatchUpdateIn | MaintenanceUpdateIn, Field(discriminator="type")]


def describe(err: ValidationError) -> str:
    """A short, specific message: the first few failing fields and why."""
    parts = []
    for item in err.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    more = err.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
