"""An incident row that no longer reads as an incident (a value from a newer release after a
downgrade, a hand edit, a damaged body) is the store's error, never a crash: lists and scans skip it
with one warning, the hub starts, liveness restores, a new report for its key is still recorded and
`incidents show` says it cannot be read (each a crash path a reviewer reproduced)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from hub import daemon
from hub.bus import Bus, Subscription
from hub.cli import main
from hub.errors import StoreError
from hub.events import HealthChanged, IncidentChanged, IncidentKey, IncidentReport, Reading
from hub.incident import Dispatch, DispatchStatus, Incident, Status
from hub.incident_service import IncidentService
from hub.liveness import DeviceProfile, LivenessTracker
from hub.liveness_service import LivenessService
from hub.measurements import Measurement
from hub.store import DbWorker, open_database, outbox
from hub.store import incidents as repo
from tests.sync_support import T0, FakeClock
from tests.task_support import background

Body = dict[str, Any]


def _report(key: str, at: float, **kw: Any) -> IncidentReport:
    fields: dict[str, Any] = {
        "emergency_type": "water_damage",
        "severity": "critical",
        "title": f"Trouble at {key}",
        "location": "kitchen",
        "source_id": "water_leak",
        "source_version": "1",
        "sensors": ("kitchen-leak",),
    }
    fields.update(kw)
    return IncidentReport(key=key, at=at, **fields)


def _open(db: sqlite_utils.Database, key: str, at: float = T0, **kw: Any) -> Incident:
    incident = repo.apply_report(db, _report(key, at, **kw), "hub-1")
    assert incident is not None
    return incident


def _edit(db: sqlite_utils.Database, incident_id: str, change: Callable[[Body], None]) -> None:
    """What the reviewer did in a copy of a real `hub.db`: edit the stored JSON of a row."""
    (text,) = db.execute("SELECT body FROM incidents WHERE id = ?", [incident_id]).fetchone()
    body = json.loads(text)
    change(body)
    _set_body(db, incident_id, json.dumps(body))


def _set_body(db: sqlite_utils.Database, incident_id: str, text: str) -> None:
    db.execute("UPDATE incidents SET body = ? WHERE id = ?", [text, incident_id])
    db.conn.commit()


def _newer_source_kind(body: Body) -> None:
    body["source"]["kind"] = "cloud"  # what a newer release writes, left after a downgrade


def _no_source(body: Body) -> None:
    del body["source"]


def _sensors_as_text(body: Body) -> None:
    body["sensors"] = "kitchen-leak"


def _evidence_not_objects(body: Body) -> None:
    body["evidence"] = [["kitchen-leak", "water_leak", True]]


def _revision_as_text(body: Body) -> None:
    body["revision"] = "three"


def _unknown_dispatch_status(body: Body) -> None:
    body["dispatch"] = {"status": "rerouted", "at": "2026-11-27T07:10:00Z"}


DAMAGES = {
    "unknown source kind": (_newer_source_kind, "cloud"),
    "missing source": (_no_source, "source"),
    "sensors not a list": (_sensors_as_text, "sensors"),
    "evidence items not objects": (_evidence_not_objects, "evidence"),
    "revision not a number": (_revision_as_text, "revision"),
    "unknown dispatch status": (_unknown_dispatch_status, "rerouted"),
}


def _damage(db: sqlite_utils.Database, incident_id: str, damage: str) -> None:
    if damage == "truncated JSON":
        (text,) = db.execute("SELECT body FROM incidents WHERE id = ?", [incident_id]).fetchone()
        _set_body(db, incident_id, text[: len(text) // 2])
    elif damage == "not an object":
        _set_body(db, incident_id, "[]")
    else:
        _edit(db, incident_id, DAMAGES[damage][0])


ALL_DAMAGES = [*DAMAGES, "truncated JSON", "not an object"]


def _warnings_about(caplog: pytest.LogCaptureFixture, incident_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and incident_id in r.getMessage()
    ]


# -- reading one ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ALL_DAMAGES)
def test_reading_an_unreadable_incident_is_a_store_error_naming_it(
    tmp_path: Path, damage: str
) -> None:
    db = open_database(tmp_path)
    incident = _open(db, IncidentKey.WATER_LEAK)
    _damage(db, incident.id, damage)
    with pytest.raises(StoreError) as raised:
        repo.get_incident(db, incident.id[:8])
    assert incident.id in str(raised.value)
    assert "cannot be read" in str(raised.value)
    if damage in DAMAGES:
        assert DAMAGES[damage][1] in str(raised.value)  # and why


# -- lists and scans ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["unknown source kind", "truncated JSON", "missing source"])
def test_lists_skip_an_unreadable_incident_and_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    db = open_database(tmp_path)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    good = _open(db, "device_health:thermo", T0 + 1, emergency_type="device_health")
    _damage(db, bad.id, damage)
    caplog.set_level(logging.DEBUG)
    for _ in range(5):  # e.g. the MQTT snapshot at every reconnect, `status` every few seconds
        assert [i.id for i in repo.list_incidents(db)] == [good.id]
        assert [i.id for i in repo.list_incidents(db, open_only=True)] == [good.id]
    (warning,) = _warnings_about(caplog, bad.id)
    assert "cannot be read" in warning
    if damage in DAMAGES:
        assert DAMAGES[damage][1] in warning


async def test_the_mqtt_snapshot_publishes_the_readable_incidents(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    good = _open(db, "device_health:thermo", T0 + 1, emergency_type="device_health")
    _damage(db, bad.id, "unknown source kind")
    async with DbWorker(tmp_path) as worker:
        snapshot = await daemon._snapshot(worker)()
    assert [i.id for i in snapshot] == [good.id]


# -- the services the daemon runs -----------------------------------------------------------------


async def test_liveness_restores_past_an_unreadable_health_incident(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(tmp_path)
    health = {"emergency_type": "device_health", "severity": "medium"}
    readable = _open(db, "device_health:leak", T0, **health)
    unreadable = _open(db, "device_health:thermo", T0, **health)
    _damage(db, unreadable.id, "unknown source kind")
    bus = Bus()
    changes = bus.subscribe("test", (HealthChanged,))
    async with DbWorker(tmp_path) as worker:
        tracker = LivenessTracker({"leak": DeviceProfile()}, start=clock.monotonic())
        service = LivenessService(
            bus=bus,
            db=worker,
            clock=clock,
            tracker=tracker,
            discovered_profile=lambda _e: DeviceProfile(),
        )
        await service.restore()  # what `run` does first; it took the whole hub down
        clock.t += 60
        bus.publish(Reading("leak", Measurement.WATER_LEAK, False, clock.t))
        await service.check()
    # The readable incident was restored: the first assessment announces the sensor healthy.
    assert [(c.subject, c.problems) for c in changes.drain()] == [("leak", ())]
    assert readable.id != unreadable.id
    assert len(_warnings_about(caplog, unreadable.id)) == 1


async def _next_change(service_task: asyncio.Task[None], changes: Subscription[Any]) -> Incident:
    """The next incident written, or the service's own failure (not a timeout) if it died."""
    waiting = asyncio.ensure_future(changes.wait())
    done, _ = await asyncio.wait({service_task, waiting}, timeout=5, return_when="FIRST_COMPLETED")
    if service_task in done:
        waiting.cancel()
        service_task.result()  # raises what ended the service
        raise AssertionError("the incident service ended")
    assert waiting in done, "no incident written"
    (changed,) = changes.drain()
    assert isinstance(changed, IncidentChanged)
    return changed.incident


@pytest.mark.parametrize("damage", ["unknown source kind", "truncated JSON"])
async def test_a_new_report_for_the_key_of_an_unreadable_incident_opens_a_new_one(
    tmp_path: Path, damage: str
) -> None:
    db = open_database(tmp_path)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    _damage(db, bad.id, damage)
    bus = Bus()
    changes: Subscription[Any] = bus.subscribe("test", (IncidentChanged,))
    async with (
        DbWorker(tmp_path) as worker,
        background(IncidentService(bus=bus, db=worker, hub_id="hub-1").run()) as task,
    ):
        bus.publish(_report(IncidentKey.WATER_LEAK, T0 + 60, sensors=("bath-leak",)))
        opened = await _next_change(task, changes)
        assert (opened.id != bad.id, opened.revision, opened.status) == (True, 1, Status.OPEN)
        assert opened.sensors == ("bath-leak",)
        # The next report of the key joins the new incident; it opens no third one.
        bus.publish(_report(IncidentKey.WATER_LEAK, T0 + 120, sensors=("hall-leak",)))
        joined = await _next_change(task, changes)
        assert (joined.id, joined.revision) == (opened.id, 2)
        # The cause is gone: the readable one resolves.
        bus.publish(_report(IncidentKey.WATER_LEAK, T0 + 180, resolve=True))
        resolved = await _next_change(task, changes)
        assert (resolved.id, resolved.status) == (opened.id, Status.RESOLVED)
    assert [i.id for i in repo.list_incidents(db)] == [opened.id]
    # What the cloud gets: the new incident's revisions, whatever the unreadable row holds.
    pending = {(i.ref_id, i.revision) for i in outbox.next_batch(db, 100, 1 << 20)}
    assert (opened.id, 3) in pending


def test_a_follow_up_whose_incident_is_unreadable_is_recorded_as_a_new_incident(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    repo.change_status(db, bad.id, Status.RESOLVED, T0 + 10)
    _damage(db, bad.id, "unknown source kind")
    # an action's outcome after the incident was resolved: it has no title of its own
    late = repo.apply_report(db, _report(IncidentKey.WATER_LEAK, T0 + 60, title=""), "hub-1")
    assert late is not None
    assert late.id != bad.id
    assert late.title  # something to show people, not an empty line
    # nothing to resolve that can be read: nothing changes, nothing raises
    _open(db, "device_health:thermo", T0, emergency_type="device_health")
    (thermo,) = [i for i in repo.list_incidents(db) if i.key == "device_health:thermo"]
    _damage(db, thermo.id, "missing source")
    resolve = _report("device_health:thermo", T0 + 90, resolve=True)
    assert repo.apply_report(db, resolve, "hub-1") is None


def test_a_dispatch_update_for_an_unreadable_incident_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(tmp_path)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    good = _open(db, "device_health:thermo", T0, emergency_type="device_health")
    _damage(db, bad.id, "unknown source kind")
    update = Dispatch(DispatchStatus.DISPATCHED, T0 + 60)
    assert repo.record_dispatch(db, bad.id, update, T0 + 60) is None  # as for an unknown id
    changed = repo.record_dispatch(db, good.id, update, T0 + 60)
    assert changed is not None
    assert changed.status is Status.DISPATCHED
    assert len(_warnings_about(caplog, bad.id)) == 1


# -- the CLI --------------------------------------------------------------------------------------


def test_the_cli_lists_the_others_and_says_which_one_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hub.toml"
    data = tmp_path / "data"
    config.write_text(f'[hub]\nid = "hub-cli"\ndata_dir = "{data}"\n[mqtt]\nport = 1\n')
    db = open_database(data)
    bad = _open(db, IncidentKey.WATER_LEAK, T0)
    good = _open(db, "device_health:thermo", T0 + 1, emergency_type="device_health")
    _damage(db, bad.id, "unknown source kind")
    c = str(config)
    assert main(["-c", c, "incidents", "list", "--json"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [good.id]
    assert main(["-c", c, "status", "--json"]) == 0
    capsys.readouterr()
    assert main(["-c", c, "incidents", "show", bad.id[:8]]) != 0
    err = capsys.readouterr().err
    assert bad.id in err
    assert "cannot be read" in err
    assert "cloud" in err
