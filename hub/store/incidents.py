"""Incident persistence: each change and its outbox row commit in one transaction.

A row whose body no longer reads as an incident (a value only a newer release knows, left by a
downgrade; a hand edit; a damaged body) is `UnreadableIncidentError` when asked for by id, and is
skipped, with one warning, by everything that lists or scans: the hub keeps running, and a new
report for its key opens a new incident. The row itself is left as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import sqlite_utils

from hub.errors import StoreError
from hub.events import IncidentReport
from hub.incident import (
    Dispatch,
    EmergencyType,
    Incident,
    Severity,
    SourceKind,
    Status,
    WireFormatError,
    apply_dispatch,
    from_wire,
    merge,
    new_incident,
    set_status,
    to_json,
)
from hub.store.db import transaction

_log = logging.getLogger(__name__)

#: Outbox priority (lower is sent first): critical incidents before anything else.
PRIORITY_CRITICAL = 0
PRIORITY_INCIDENT = 1
OUTBOX_KIND_INCIDENT = "incident"

_OPEN = (Status.OPEN.value, Status.ACKNOWLEDGED.value, Status.DISPATCHED.value)
_COLUMNS = "id, key, body"


class UnreadableIncidentError(StoreError):
    """An incident row whose body does not read as an incident; `reason` says why."""

    def __init__(self, incident_id: str, reason: str) -> None:
        super().__init__(
            f"incident {incident_id} cannot be read ({reason}): written by a newer release, "
            "or damaged; it is left as it is"
        )
        self.incident_id = incident_id
        self.reason = reason


#: The unreadable rows already warned about (id -> reason), so that a hub listing its incidents
#: every few seconds says it once, not at every listing. Bounded: forgotten when it grows past this.
_WARNED_MAX = 1024
_warned: dict[str, str] = {}


def apply_report(db: sqlite_utils.Database, report: IncidentReport, hub_id: str) -> Incident | None:
    """Open an incident for `report.key`, or merge into the open one. None: nothing changed."""
    with transaction(db):
        current = _open_by_key(db, report.key)
        if current is None and report.resolve:
            return None  # nothing open (or nothing open that can be read) to resolve
        title = report.title
        if current is None and not title and report.opens_as:
            title = report.opens_as  # still going on: a new incident, not the resolved one
        elif current is None and not title:
            # A follow-up (an action's outcome, an episode's end) belongs to the incident it
            # follows, even when the homeowner or the cloud resolved that one in between.
            try:
                current = _latest_by_key(db, report.key)
            except UnreadableIncidentError as err:
                # It cannot be joined: record the follow-up as an incident of its own.
                _warn_unreadable(err)
                kind = report.emergency_type.replace("_", " ").capitalize()
                title = f"{kind} ({report.key}): follows incident {err.incident_id[:8]}, unreadable"
        if current is None:
            current = new_incident(
                hub_id=hub_id,
                key=report.key,
                emergency_type=EmergencyType(report.emergency_type),
                severity=Severity(report.severity),
                title=title,
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

    None when the incident is unknown, cannot be read (warned about once: an update the hub cannot
    apply must not hold back the ones after it), or nothing changed (the update was already applied).
    """
    with transaction(db):
        row = db.execute(
            f"SELECT {_COLUMNS} FROM incidents WHERE id = ?",  # noqa: S608
            [incident_id],
        ).fetchone()
        if row is None:
            return None
        try:
            current = _decode(row)
        except UnreadableIncidentError as err:
            _warn_unreadable(err)
            return None
        changed = apply_dispatch(current, dispatch, at=at)
        return None if changed is None else _revise(db, current, changed)


def get_incident(db: sqlite_utils.Database, id_or_prefix: str) -> Incident | None:
    """By full id or by a unique prefix of at least 4 characters (what people type).

    Raises `UnreadableIncidentError` (a `StoreError`) when that row does not read as an incident.
    """
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE id = ? "  # noqa: S608
        "OR (length(?) >= 4 AND id LIKE ? || '%') LIMIT 2",
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
        f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY updated_at DESC LIMIT ?",  # noqa: S608
        [*params, limit],
    ).fetchall()
    return _readable(rows)


def outbox_depth(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])


def _open_by_key(db: sqlite_utils.Database, key: str) -> Incident | None:
    """The newest open incident of `key` that can be read (one that cannot is skipped: a report for
    its key opens a new incident, which the next reports then join)."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE key = ? "  # noqa: S608
        f"AND status IN ({','.join('?' * len(_OPEN))}) ORDER BY detected_at DESC",
        [key, *_OPEN],
    ).fetchall()
    found = _readable(rows, limit=1)
    return found[0] if found else None


def _latest_by_key(db: sqlite_utils.Database, key: str) -> Incident | None:
    """The newest incident of `key`; `UnreadableIncidentError` when that one cannot be read (an
    older one is not what a follow-up follows)."""
    row = db.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE key = ? "  # noqa: S608
        "ORDER BY detected_at DESC LIMIT 1",
        [key],
    ).fetchone()
    return None if row is None else _decode(row)


def _revise(db: sqlite_utils.Database, current: Incident, changed: Incident | None) -> Incident:
    """Write `changed` (a new revision, with its outbox row); `current` when nothing changed."""
    if changed is None:
        return current
    _write(db, changed)
    return changed


def _decode(row: tuple[str, str, Any]) -> Incident:
    """The incident of an (id, key, body) row; `UnreadableIncidentError`, and nothing else, when
    the body does not read as one."""
    incident_id, key, body = row
    try:
        incident = from_wire(json.loads(body), key=key)
    except WireFormatError as err:
        raise UnreadableIncidentError(incident_id, str(err)) from err
    except json.JSONDecodeError as err:
        raise UnreadableIncidentError(incident_id, f"not JSON: {err}") from err
    except (ValueError, TypeError, RecursionError) as err:  # e.g. a body that is not text
        raise UnreadableIncidentError(incident_id, f"{type(err).__name__}: {err}") from err
    if incident.id != incident_id:
        raise UnreadableIncidentError(incident_id, f"its body is incident {incident.id}")
    return incident


def _readable(rows: list[tuple[str, str, Any]], limit: int | None = None) -> list[Incident]:
    """The rows that read as incidents (at most `limit`); the others are warned about, once."""
    out: list[Incident] = []
    for row in rows:
        try:
            out.append(_decode(row))
        except UnreadableIncidentError as err:
            _warn_unreadable(err)
            continue
        if limit is not None and len(out) >= limit:
            break
    return out


def _warn_unreadable(err: UnreadableIncidentError) -> None:
    if _warned.get(err.incident_id) == err.reason:
        _log.debug("skipping incident %s: %s", err.incident_id, err.reason)
        return
    if len(_warned) >= _WARNED_MAX:
        _warned.clear()
    _warned[err.incident_id] = err.reason
    _log.warning("%s; skipped until it reads as an incident again", err)


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
