"""Incident persistence: each change and its outbox row commit in one transaction."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import sqlite_utils

from hub.events import IncidentReport
from hub.incident import (
    Dispatch,
    EmergencyType,
    Incident,
    Severity,
    SourceKind,
    Status,
    apply_dispatch,
    from_wire,
    merge,
    new_incident,
    set_status,
    to_json,
)
from hub.store.db import transaction

#: Outbox priority (lower is sent first): critical incidents before anything else.
PRIORITY_CRITICAL = 0
PRIORITY_INCIDENT = 1
OUTBOX_KIND_INCIDENT = "incident"

_OPEN = (Status.OPEN.value, Status.ACKNOWLEDGED.value, Status.DISPATCHED.value)


def apply_report(db: sqlite_utils.Database, report: IncidentReport, hub_id: str) -> Incident | None:
    """Open an incident for `report.key`, or merge into the open one. None: nothing changed."""
    with transaction(db):
        current = _open_by_key(db, report.key)
        if current is None and report.resolve:
            return None
        if current is None and not report.title:
            # A follow-up (an action's outcome, an episode's end) belongs to the incident it
            # follows, even when the homeowner or the cloud resolved that one in between.
            current = _latest_by_key(db, report.key)
        if current is None:
            current = new_incident(
                hub_id=hub_id,
                key=report.key,
                emergency_type=EmergencyType(report.emergency_type),
                severity=Severity(report.severity),
                title=report.title,
                location=report.location,
                source_id=report.source_id,
                source_version=report.source_version,
                at=report.at,
                source_kind=SourceKind(report.source_kind),
            )
        changed = merge(
            current,
            at=report.at,
            severity=Severity(report.severity),
            title=report.title,
            sensors=report.sensors,
            evidence=report.evidence,
            actions=report.actions,
            response_plan=report.response_plan,
            escalated=report.escalated,
        )
        if report.resolve:
            resolved = set_status(changed or current, Status.RESOLVED, at=report.at)
            if resolved is not None and changed is not None:
                resolved = replace(resolved, revision=changed.revision)  # one revision, not two
            changed = resolved or changed
        return None if changed is None else _revise(db, current, changed)


def change_status(
    db: sqlite_utils.Database, incident_id: str, status: Status, at: float
) -> Incident:
    """Acknowledge or resolve (homeowner action). Raises KeyError for an unknown id."""
    with transaction(db):
        current = get_incident(db, incident_id)
        if current is None:
            raise KeyError(incident_id)
        return _revise(db, current, set_status(current, status, at=at))


def record_dispatch(
    db: sqlite_utils.Database, incident_id: str, dispatch: Dispatch, at: float
) -> Incident | None:
    """Mirror a dispatch update from the cloud as a new revision (with its outbox row).

    None when the incident is unknown or nothing changed (the update was already applied).
    """
    with transaction(db):
        row = db.execute("SELECT key, body FROM incidents WHERE id = ?", [incident_id]).fetchone()
        if row is None:
            return None
        current = _decode(row)
        changed = apply_dispatch(current, dispatch, at=at)
        return None if changed is None else _revise(db, current, changed)


def get_incident(db: sqlite_utils.Database, id_or_prefix: str) -> Incident | None:
    """By full id or by a unique prefix of at least 4 characters (what people type)."""
    rows = db.execute(
        "SELECT key, body FROM incidents WHERE id = ? OR (length(?) >= 4 AND id LIKE ? || '%') "
        "LIMIT 2",
        [id_or_prefix, id_or_prefix, id_or_prefix],
    ).fetchall()
    if len(rows) != 1:
        return None
    return _decode(rows[0])


def list_incidents(
    db: sqlite_utils.Database, *, open_only: bool = False, limit: int = 100
) -> list[Incident]:
    where = f"WHERE status IN ({','.join('?' * len(_OPEN))})" if open_only else ""
    params: list[Any] = list(_OPEN) if open_only else []
    rows = db.execute(
        f"SELECT key, body FROM incidents {where} ORDER BY updated_at DESC LIMIT ?",  # noqa: S608
        [*params, limit],
    ).fetchall()
    return [_decode(r) for r in rows]


def outbox_depth(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])


def _open_by_key(db: sqlite_utils.Database, key: str) -> Incident | None:
    row = db.execute(
        f"SELECT key, body FROM incidents WHERE key = ? AND status IN ({','.join('?' * len(_OPEN))}) "  # noqa: S608
        "ORDER BY detected_at DESC LIMIT 1",
        [key, *_OPEN],
    ).fetchone()
    return None if row is None else _decode(row)


def _latest_by_key(db: sqlite_utils.Database, key: str) -> Incident | None:
    row = db.execute(
        "SELECT key, body FROM incidents WHERE key = ? ORDER BY detected_at DESC LIMIT 1", [key]
    ).fetchone()
    return None if row is None else _decode(row)


def _revise(db: sqlite_utils.Database, current: Incident, changed: Incident | None) -> Incident:
    """Write `changed` (a new revision, with its outbox row); `current` when nothing changed."""
    if changed is None:
        return current
    _write(db, changed)
    return changed


def _decode(row: tuple[str, str]) -> Incident:
    return from_wire(json.loads(row[1]), key=row[0])


def _write(db: sqlite_utils.Database, incident: Incident) -> None:
    body = to_json(incident).decode()
    db.execute(
        "INSERT INTO incidents (id, key, revision, status, severity, emergency_type, detected_at, "
        "updated_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "revision = excluded.revision, status = excluded.status, severity = excluded.severity, "
        "updated_at = excluded.updated_at, body = excluded.body",
        [
            incident.id,
            incident.key,
            incident.revision,
            incident.status.value,
            incident.severity.value,
            incident.emergency_type.value,
            incident.detected_at,
            incident.updated_at,
            body,
        ],
    )
    priority = PRIORITY_CRITICAL if incident.severity is Severity.CRITICAL else PRIORITY_INCIDENT
    db.execute(
        "INSERT INTO outbox (kind, ref_id, revision, priority, body, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [OUTBOX_KIND_INCIDENT, incident.id, incident.revision, priority, body, incident.updated_at],
    )
