"""The CLI on a store the hub has filled: tables for people, JSON for scripts, ack and resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.cli import main
from hub.cli_common import EXIT_NOT_FOUND
from hub.events import IncidentKey, IncidentReport, MaintenanceTask, Reading
from hub.measurements import Measurement
from hub.store import hubstate, open_database
from hub.store import incidents as incident_repo
from hub.store import maintenance as maintenance_repo
from hub.store import readings as readings_repo


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nid = "hub-cli"\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nport = 1\n')
    db = open_database(tmp_path / "data")
    readings_repo.register_devices(
        db,
        [
            readings_repo.DeviceRow(
                "kitchen-leak", "zigbee2mqtt", "Kitchen Leak", "kitchen", None, None, "config"
            )
        ],
    )
    readings_repo.record(
        db,
        [Reading("kitchen-leak", Measurement.WATER_LEAK, True, 1000.0)],
        [readings_repo.SeenUpdate("kitchen-leak", 1000.0, True)],
    )
    incident_repo.apply_report(
        db,
        IncidentReport(
            key=IncidentKey.WATER_LEAK,
            emergency_type="water_damage",
            severity="critical",
            title="Water leak at kitchen",
            location="kitchen",
            source_id="water_leak",
            source_version="1",
            at=1000.0,
            sensors=("kitchen-leak",),
        ),
        "hub-cli",
    )
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_sensors_and_incidents(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(config)
    (device,) = _json(capsys, "-c", c, "sensors", "--json")  # type: ignore[misc]
    assert device["id"] == "kitchen-leak"
    assert device["readings"]["water_leak"]["value"] == "true"
    assert device["online"] is True
    assert main(["-c", c, "sensors"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert header.split() == [
        "DEVICE", "ADAPTER", "ROLE", "LOCATION", "EVERY", "LAST", "SEEN", "STATE", "LAST", "READING"
    ]  # fmt: skip
    # no role; `?`: its report interval is not learned yet
    assert row.split()[:4] == ["kitchen-leak", "zigbee2mqtt", "kitchen", "?"]
    assert row.split()[-2:] == ["online", "water_leak=true"]

    (incident,) = _json(capsys, "-c", c, "incidents", "list", "--json")  # type: ignore[misc]
    assert incident["title"] == "Water leak at kitchen"
    acked = _json(capsys, "-c", c, "incidents", "ack", incident["id"][:8], "--json")
    assert acked["status"] == "acknowledged"  # type: ignore[index]
    assert acked["revision"] == 2  # type: ignore[index]
    resolved = _json(capsys, "-c", c, "incidents", "resolve", incident["id"], "--json")
    assert resolved["status"] == "resolved"  # type: ignore[index]
    assert resolved["resolved_at"] is not None  # type: ignore[index]
    assert main(["-c", c, "incidents", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no open incidents"
    assert main(["-c", c, "incidents", "show", "nope"]) == EXIT_NOT_FOUND


def test_status_when_the_hub_is_not_running(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _json(capsys, "-c", str(config), "status", "--json")
    assert report["running"] is False  # type: ignore[index]
    assert report["open_incidents"] == 1  # type: ignore[index]
    assert report["outbox_depth"] == 1  # type: ignore[index]
    assert main(["-c", str(config), "status"]) == 0
    assert "NOT RUNNING" in capsys.readouterr().out


def test_status_says_when_an_anomaly_model_was_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_database(config.parent / "data")
    problem = "univariate.onnx: sha256 does not match its card"
    hubstate.write(db, {"anomaly": {"problem": problem, "streams": 0, "scored": 0}})
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert f"anomaly detection: REFUSED MODEL: {problem}, 0 streams" in out


@pytest.mark.parametrize(
    ("water", "line"),
    [
        (
            {"calibrated": False, "restored": False, "rows": 120, "rows_needed": 400},
            "water system model: calibrating, 120 of 400 rows",
        ),
        (
            {
                "calibrated": False,
                "restored": True,
                "rows": 9000,
                "rows_needed": 400,
                "seconds": 3.25 * 3600,
                "seconds_needed": 86400.0,
            },
            "water system model: calibrating, 3.2 h of 24.0 h, 9000 rows (at least 400) "
            "(resumed after a restart)",
        ),
        (
            {"calibrated": True, "restored": True, "rows": 400, "rows_needed": 400},
            "water system model: calibrated (kept from an earlier run)",
        ),
        (
            {"calibrated": True, "restored": False, "note": "cannot keep the calibration"},
            "water system model: calibrated; cannot keep the calibration",
        ),
    ],
)
def test_status_says_where_the_water_system_calibration_stands(
    config: Path, capsys: pytest.CaptureFixture[str], water: dict[str, object], line: str
) -> None:
    db = open_database(config.parent / "data")
    hubstate.write(db, {"anomaly": {"streams": 6, "scored": 10, "water_system": water}})
    assert main(["-c", str(config), "status"]) == 0
    assert line in capsys.readouterr().out


def test_status_says_how_many_streams_were_read_back_and_why_not(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_database(config.parent / "data")
    note = "/var/lib/homeguard/anomaly_streams.json was not used (written for another model file)"
    anomaly = {"streams": 7, "scored": 10, "restored": 5, "state_note": note}
    hubstate.write(db, {"anomaly": anomaly})
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "anomaly detection: on, 7 streams (5 read back at start), 10 readings scored" in out
    assert f"anomaly state: {note}" in out


def test_maintenance_lists_the_cloud_s_tasks_soonest_first(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(config)
    assert main(["-c", c, "maintenance"]) == 0
    assert capsys.readouterr().out.startswith("no maintenance tasks")
    db = open_database(tmp_path / "data")
    heater = MaintenanceTask(
        "t-1", "Flush the water heater", "water_heater", "2099-12-01", "medium", every_days=365
    )
    pump = MaintenanceTask(
        "t-2", "Test the sump pump", "plumbing", "2020-01-15", "high", every_runtime_h=500.0
    )
    assert maintenance_repo.keep(db, heater, 1000.0)
    assert maintenance_repo.keep(db, pump, 1000.0)
    assert not maintenance_repo.keep(db, pump, 999.0)  # sent before the kept one
    tasks = _json(capsys, "-c", c, "maintenance", "--json")
    assert [t["id"] for t in tasks] == ["t-2", "t-1"]  # type: ignore[index, union-attr]
    assert tasks[1]["every_days"] == 365  # type: ignore[index]
    assert main(["-c", c, "maintenance"]) == 0
    header, _, pump_row, heater_row = capsys.readouterr().out.splitlines()
    assert header.split() == ["DUE", "PRIORITY", "SYSTEM", "REPEATS", "SENT", "TITLE"]
    assert pump_row.startswith("2020-01-15 (overdue)  high")
    assert "every 500 h of runtime" in pump_row
    assert pump_row.endswith("Test the sump pump")
    assert "(overdue)" not in heater_row
    assert "every 365 d" in heater_row


def test_a_maintenance_row_that_no_longer_reads_is_left_out(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = open_database(tmp_path / "data")
    task = MaintenanceTask("t-1", "Flush the water heater", "water_heater", "2099-12-01", "low")
    maintenance_repo.keep(db, task, 1000.0)
    db.execute(
        "INSERT INTO maintenance_tasks (id, task, sent_at, due) VALUES (?, ?, ?, ?)",
        ("t-9", '{"id": "t-9", "colour": "blue"}', 1000.0, "2099-01-01"),
    )
    db.conn.commit()
    tasks = _json(capsys, "-c", str(config), "maintenance", "--json")
    assert [t["id"] for t in tasks] == ["t-1"]  # type: ignore[index, union-attr]
    assert "maintenance task 't-9' is unreadable" in caplog.text
