"""The reference dispatch server over real HTTP on loopback: every status code of the contract."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.server import RateLimit, RunningServer, serve
from sync.signing import authorization

HUB = "hub-7f3a"
OTHER = "hub-other"
SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
HUBS = {HUB: SECRET, OTHER: OTHER_SECRET}


class Clock:
    """A settable clock for the server (unix seconds)."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cloud(tmp_path: Path, clock: Clock) -> Iterator[RunningServer]:
    with serve(tmp_path / "cloud.db", HUBS, clock=clock) as running:
        yield running


@pytest.fixture
def http(cloud: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud.url, timeout=10) as client:
        yield client


def send(
    http: httpx.Client,
    clock: Clock,
    method: str,
    path: str,
    body: Any = None,
    *,
    hub: str = HUB,
    secret: bytes = SECRET,
    skew: float = 0,
    raw: bytes | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """A request signed as the contract says (path must need no percent-encoding)."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    ts = int(clock() + skew)
    headers = {"Authorization": authorization(hub, secret, method, path, ts, content)}
    if content:
        headers["Content-Type"] = "application/json"
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    return http.request(method, path, content=content, headers=headers, **extra)


def incident(
    revision: int = 1, *, ident: str | None = None, hub: str = HUB, **fields: Any
) -> dict[str, Any]:
    return {
        "id": ident or str(uuid.uuid4()),
        "revision": revision,
        "hub_id": hub,
        "emergency_type": "water_damage",
        "severity": "critical",
        "status": "open",
        "title": "Water leak at Kitchen sink",
        "location": "kitchen",
        "detected_at": "2026-05-28T10:00:00Z",
        "updated_at": "2026-05-28T10:00:01.250Z",
        "resolved_at": None,
        "source": {"kind": "rule", "id": "leak-close-valve", "version": "1"},
        "sensors": ["kitchen-sink-leak"],
        "evidence": [
            {
                "sensor_id": "kitchen-sink-leak",
                "measurement": "leak",
                "value": True,
                "unit": None,
                "at": "2026-05-28T10:00:00Z",
            }
        ],
        "actions": [
            {
                "action": "close_valve",
                "target": "main-valve",
                "at": "2026-05-28T10:00:00.1Z",
                "result": "ok",
            }
        ],
        "response_plan": ["Stay clear of standing water near outlets"],
        **fields,
    }


INCIDENTS = f"/v1/hubs/{HUB}/incidents"
UPDATES = f"/v1/hubs/{HUB}/updates"
TELEMETRY = f"/v1/hubs/{HUB}/telemetry"
HEARTBEAT = f"/v1/hubs/{HUB}/heartbeat"


def operator(
    http: httpx.Client, cloud: RunningServer, method: str, path: str, **kw: Any
) -> httpx.Response:
    return http.request(
        method, path, headers={"Authorization": f"Bearer {cloud.operator_token}"}, **kw
    )


# -- incidents -----------------------------------------------------------------------------------


def test_upsert_accepted_duplicate_stale_and_rejected_in_order(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    first = incident(2)
    ident = first["id"]
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [first]})
    assert r.status_code == 200
    assert r.json()["results"] == [{"id": ident, "revision": 2, "result": "accepted"}]
    assert r.json()["server_time"] == "2026-05-28T20:26:40.000Z"

    bad = incident(1, severity="apocalyptic")
    newer = incident(3, ident=ident, status="acknowledged", extra_field={"ignored": True})
    batch = [incident(2, ident=ident), incident(1, ident=ident), bad, newer, "not an object"]
    r = send(http, clock, "POST", INCIDENTS, {"incidents": batch})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["result"] for x in results] == [
        "duplicate",
        "stale",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert results[2]["id"] == bad["id"]
    assert results[2]["revision"] == 1
    assert results[2]["error"].startswith("severity:")
    assert results[4] == {
        "id": None,
        "revision": None,
        "result": "rejected",
        "error": results[4]["error"],
    }
    assert "error" not in results[3]

    assert cloud.stored_revisions(HUB) == [(ident, 2), (ident, 3)]
    assert cloud.incidents(HUB) == [newer]
    assert cloud.incidents(OTHER) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "not-a-uuid"}, "id"),
        ({"revision": 0}, "revision"),
        ({"revision": "1"}, "revision"),
        ({"emergency_type": "fire"}, "emergency_type"),
        ({"status": "closed"}, "status"),
        ({"detected_at": "2026-05-28 10:00:00"}, "detected_at"),
        ({"updated_at": "2026-05-28T10:00:00+02:00"}, "updated_at"),
        ({"source": {"kind": "oracle", "id": "x", "version": "1"}}, "source.kind"),
        (
            {
                "actions": [
                    {
                        "action": "flood",
                        "target": None,
                        "at": "2026-05-28T10:00:00Z",
                        "result": "ok",
                    }
                ]
            },
            "actions.0.action",
        ),
        ({"dispatch": {"status": "teleported", "at": "2026-05-28T10:00:00Z"}}, "dispatch.status"),
    ],
)
def test_each_invalid_field_is_named_in_the_rejection(
    http: httpx.Client, clock: Clock, change: dict[str, Any], field: str
) -> None:
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [incident(**change), incident()]})
    results = r.json()["results"]
    assert [x["result"] for x in results] == ["rejected", "accepted"]
    assert results[0]["error"].startswith(f"{field}:")


def test_a_missing_field_and_a_foreign_hub_id_are_rejected(
    http: httpx.Client, clock: Clock
) -> None:
    missing = incident()
    del missing["response_plan"]
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [missing, incident(hub=OTHER)]})
    results = r.json()["results"]
    assert results[0]["error"].startswith("response_plan:")
    assert results[1]["result"] == "rejected"
    assert results[1]["error"].startswith("hub_id:")


@pytest.mark.parametrize(
    "raw",
    [b"[]", b"{}", b'{"incidents": []}', b'{"incidents": {}}', b"not json", b"\xff\xfe", b""],
)
def test_a_body_that_is_not_a_batch_is_400(http: httpx.Client, clock: Clock, raw: bytes) -> None:
    r = send(http, clock, "POST", INCIDENTS, raw=raw)
    assert r.status_code == 400
    assert set(r.json()) == {"error", "server_time"}


def test_too_many_items_or_bytes_is_413(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [incident() for _ in range(201)]})
    assert r.status_code == 413
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [incident() for _ in range(200)]})
    assert r.status_code == 200
    huge = incident(title="x" * (1024 * 1024))
    r = send(http, clock, "POST", INCIDENTS, {"incidents": [huge]})
    assert r.status_code == 413
    assert "server_time" in r.json()
    assert len(cloud.stored_revisions(HUB)) == 200


# -- authentication ------------------------------------------------------------------------------


def test_missing_malformed_and_wrong_signatures_are_401(http: httpx.Client, clock: Clock) -> None:
    body = {"incidents": [incident()]}
    assert http.post(INCIDENTS, json=body).status_code == 401
    r = http.post(INCIDENTS, json=body, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["server_time"] == "2026-05-28T20:26:40.000Z"
    assert send(http, clock, "POST", INCIDENTS, body, secret=b"w" * 32).status_code == 401
    # signed for one body, sent with another
    ts = int(clock())
    header = authorization(HUB, SECRET, "POST", INCIDENTS, ts, b"{}")
    r = http.post(INCIDENTS, content=json.dumps(body), headers={"Authorization": header})
    assert r.status_code == 401
    # a hub the server does not know signing
    assert send(http, clock, "POST", INCIDENTS, body, hub="hub-ghost").status_code == 401
    # the query is signed too
    ts_header = authorization(HUB, SECRET, "GET", UPDATES + "?wait=0", ts, b"")
    assert http.get(UPDATES + "?wait=1", headers={"Authorization": ts_header}).status_code == 401


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_a_skewed_timestamp_is_401_with_server_time(
    http: httpx.Client, clock: Clock, skew: int
) -> None:
    r = send(http, clock, "POST", HEARTBEAT, {}, skew=skew)
    assert r.status_code == 401
    assert r.json() == {"error": r.json()["error"], "server_time": "2026-05-28T20:26:40.000Z"}
    assert "300" in r.json()["error"]


@pytest.mark.parametrize("skew", [-299, 299])
def test_a_timestamp_within_300_s_is_fine(http: httpx.Client, clock: Clock, skew: int) -> None:
    assert send(http, clock, "GET", UPDATES, skew=skew).status_code == 200


def test_another_hubs_path_is_403_and_an_unknown_hub_404(http: httpx.Client, clock: Clock) -> None:
    r = send(
        http, clock, "POST", f"/v1/hubs/{OTHER}/incidents", {"incidents": [incident(hub=OTHER)]}
    )
    assert r.status_code == 403
    assert "server_time" in r.json()
    r = send(http, clock, "GET", "/v1/hubs/hub-unknown/updates", hub="hub-unknown")
    assert r.status_code == 404
    assert send(http, clock, "GET", "/v1/hubs/hub-7f3a/nothing").status_code == 404
    r = send(http, clock, "GET", INCIDENTS)
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"


# -- rate limit and injected faults --------------------------------------------------------------


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path, clock: Clock) -> None:
    with serve(tmp_path / "c.db", HUBS, clock=clock, rate_limit=RateLimit(2, 60)) as running:
        with httpx.Client(base_url=running.url) as http:
            assert send(http, clock, "GET", UPDATES).status_code == 200
            assert send(http, clock, "GET", UPDATES).status_code == 200
            clock.now += 20
            r = send(http, clock, "GET", UPDATES)
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "40"
            path = f"/v1/hubs/{OTHER}/updates"
            assert send(http, clock, "GET", path, hub=OTHER, secret=OTHER_SECRET).status_code == 200
            clock.now += 40
            assert send(http, clock, "GET", UPDATES).status_code == 200


def test_no_rate_limit_by_default(http: httpx.Client, clock: Clock) -> None:
    assert all(send(http, clock, "GET", UPDATES).status_code == 200 for _ in range(50))


def test_injected_faults_fail_the_next_requests(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    cloud.set_fault("500", count=2)
    assert [send(http, clock, "GET", UPDATES).status_code for _ in range(3)] == [500, 500, 200]
    cloud.set_fault("429")
    r = send(http, clock, "GET", UPDATES)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "1")
    cloud.set_fault("413")
    assert send(http, clock, "POST", INCIDENTS, {"incidents": [incident()]}).status_code == 413
    assert cloud.stored_revisions(HUB) == []
    cloud.set_fault("reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send(http, clock, "POST", INCIDENTS, {"incidents": [incident()]})
    cloud.set_fault("slow")
    with pytest.raises(httpx.ReadTimeout):
        send(http, clock, "GET", UPDATES, timeout=0.3)
    cloud.set_fault("500", count=5)
    cloud.set_fault(None)
    assert send(http, clock, "GET", UPDATES).status_code == 200
    with pytest.raises(ValueError, match="unknown fault"):
        cloud.set_fault("boom")


def test_a_slow_fault_still_answers(cloud: RunningServer, http: httpx.Client, clock: Clock) -> None:
    cloud.set_fault("slow")
    started = time.monotonic()
    assert send(http, clock, "GET", UPDATES).status_code == 200
    assert time.monotonic() - started >= 1.9


# -- heartbeat and telemetry ---------------------------------------------------------------------


HEARTBEAT_BODY = {
    "sent_at": "2026-05-28T10:00:00Z",
    "version": "0.1.0",
    "uptime_s": 3600.5,
    "outbox_depth": 0,
    "open_incidents": 1,
    "sensors": {"total": 12, "online": 11},
}


def test_heartbeat_is_stored_and_answered_with_server_time(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    r = send(http, clock, "POST", HEARTBEAT, HEARTBEAT_BODY)
    assert (r.status_code, r.json()) == (200, {"server_time": "2026-05-28T20:26:40.000Z"})
    assert cloud.last_heartbeat(HUB) == HEARTBEAT_BODY
    r = send(
        http, clock, "POST", HEARTBEAT, {**HEARTBEAT_BODY, "sensors": {"total": -1, "online": 0}}
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("sensors.total:")


def rollup(**fields: Any) -> dict[str, Any]:
    return {
        "sensor_id": "basement-temp",
        "measurement": "temperature",
        "unit": "°C",
        "period_start": "2026-05-28T09:00:00Z",
        "period_s": 3600,
        "count": 60,
        "min": 18.5,
        "max": 19.25,
        "mean": 18.9,
        "last": 19,
        **fields,
    }


def test_telemetry_is_idempotent_by_sensor_measurement_and_period(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    body = {"rollups": [rollup(), rollup(measurement="humidity", unit="%")]}
    for _ in range(2):
        r = send(http, clock, "POST", TELEMETRY, body)
        assert (r.status_code, r.json()["accepted"]) == (200, 2)
    r = send(http, clock, "POST", TELEMETRY, {"rollups": [rollup(last=21.0)]})
    assert r.json()["accepted"] == 1
    stored = cloud.telemetry(HUB)
    assert len(stored) == 2
    assert {(x["measurement"], x["last"]) for x in stored} == {
        ("temperature", 21.0),
        ("humidity", 19),
    }
    assert send(http, clock, "POST", TELEMETRY, {"rollups": []}).status_code == 400
    r = send(http, clock, "POST", TELEMETRY, {"rollups": [rollup(), rollup(period_s=0)]})
    assert (r.status_code, r.json()["error"][:20]) == (400, "rollups.1: period_s:")
    assert send(http, clock, "POST", TELEMETRY, {"rollups": [rollup()] * 201}).status_code == 413


# -- updates and the long poll -------------------------------------------------------------------


DISPATCH = {
    "type": "dispatch",
    "incident_id": "0b9f6c1e-1234-4cde-8abc-0123456789ab",
    "status": "en_route",
    "contractor": {
        "id": "c-1",
        "name": "Rapid Plumbing",
        "phone": "+15550100",
        "eta": "2026-05-28T11:00:00Z",
    },
    "note": "Tech is 20 min away",
    "at": "2026-05-28T10:40:00Z",
}
MAINTENANCE = {
    "type": "maintenance",
    "task": {
        "id": "t-1",
        "title": "Flush water heater",
        "system": "water_heater",
        "due": "2026-07-01",
        "every_days": 365,
        "priority": "medium",
    },
}


def test_cursor_semantics(cloud: RunningServer, http: httpx.Client, clock: Clock) -> None:
    r = send(http, clock, "GET", UPDATES + "?wait=0")
    assert r.status_code == 200
    assert r.json()["updates"] == []
    start = r.json()["next"]
    first = cloud.queue_update(HUB, DISPATCH)
    second = cloud.queue_update(HUB, MAINTENANCE)
    cloud.queue_update(OTHER, MAINTENANCE)
    r = send(http, clock, "GET", UPDATES)
    updates = r.json()["updates"]
    assert [u["cursor"] for u in updates] == [first, second]
    assert updates[0] == {"cursor": first, **DISPATCH}
    assert updates[1] == {"cursor": second, **MAINTENANCE, "at": "2026-05-28T20:26:40.000Z"}
    assert r.json()["next"] == second
    assert send(http, clock, "GET", f"{UPDATES}?after={start}").json()["updates"] == updates
    r = send(http, clock, "GET", f"{UPDATES}?after={first}&wait=0")
    assert [u["cursor"] for u in r.json()["updates"]] == [second]
    r = send(http, clock, "GET", f"{UPDATES}?after={second}")
    assert r.json() == {"updates": [], "next": second, "server_time": r.json()["server_time"]}


@pytest.mark.parametrize(
    "query", ["?after=abc", "?wait=31", "?wait=-1", "?wait=1.5", "?since=1", "?wait=1&wait=2"]
)
def test_bad_update_queries_are_400(http: httpx.Client, clock: Clock, query: str) -> None:
    assert send(http, clock, "GET", UPDATES + query).status_code == 400


def test_a_queued_update_wakes_the_long_poll_at_once(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        poll = pool.submit(send, http, clock, "GET", UPDATES + "?wait=30")
        assert cloud.wait_for_long_polls(HUB)
        # other requests are served while the poll waits
        assert send(http, clock, "POST", HEARTBEAT, HEARTBEAT_BODY).status_code == 200
        cursor = cloud.queue_update(HUB, DISPATCH)
        r = poll.result(timeout=10)
    assert time.monotonic() - started < 5
    assert [u["cursor"] for u in r.json()["updates"]] == [cursor]


def test_a_long_poll_with_nothing_new_answers_empty_after_wait(
    http: httpx.Client, clock: Clock
) -> None:
    started = time.monotonic()
    r = send(http, clock, "GET", UPDATES + "?wait=1")
    assert r.json()["updates"] == []
    assert 0.9 <= time.monotonic() - started < 5


def test_stopping_answers_waiting_long_polls(tmp_path: Path, clock: Clock) -> None:
    before = set(threading.enumerate())
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=10) as http:
        with serve(tmp_path / "c.db", HUBS, clock=clock) as running:
            http.base_url = httpx.URL(running.url)
            poll = pool.submit(send, http, clock, "GET", UPDATES + "?wait=30")
            assert running.wait_for_long_polls(HUB)
            started = time.monotonic()
        assert time.monotonic() - started < 5
        assert poll.result(timeout=10).json()["updates"] == []
    assert set(threading.enumerate()) <= before


# -- operator endpoint ---------------------------------------------------------------------------


def test_operator_endpoint_needs_its_token_not_the_hub_signature(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    path = f"/v1/operator/hubs/{HUB}/updates"
    assert http.post(path, json=DISPATCH).status_code == 401
    wrong = http.post(path, json=DISPATCH, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert "server_time" in wrong.json()
    assert send(http, clock, "POST", path, DISPATCH).status_code == 401
    assert send(http, clock, "GET", f"/v1/operator/hubs/{HUB}/incidents").status_code == 401


def test_operator_queues_updates_and_lists_incidents(
    cloud: RunningServer, http: httpx.Client, clock: Clock
) -> None:
    r = operator(http, cloud, "POST", f"/v1/operator/hubs/{HUB}/updates", json=DISPATCH)
    assert r.status_code == 201
    cursor = r.json()["cursor"]
    assert r.json()["update"] == {"cursor": cursor, **DISPATCH}
    assert send(http, clock, "GET", UPDATES).json()["updates"] == [{"cursor": cursor, **DISPATCH}]
    r = operator(
        http, cloud, "POST", f"/v1/operator/hubs/{HUB}/updates", json={**DISPATCH, "cursor": "9"}
    )
    assert r.status_code == 400
    r = operator(http, cloud, "POST", f"/v1/operator/hubs/{HUB}/updates", json={"type": "dispatch"})
    assert r.status_code == 400
    assert (
        operator(
            http, cloud, "POST", "/v1/operator/hubs/hub-nope/updates", json=DISPATCH
        ).status_code
        == 404
    )

    item = incident(1)
    send(http, clock, "POST", INCIDENTS, {"incidents": [item]})
    send(
        http,
        clock,
        "POST",
        INCIDENTS,
        {"incidents": [{**item, "revision": 2, "status": "resolved"}]},
    )
    r = operator(http, cloud, "GET", f"/v1/operator/hubs/{HUB}/incidents")
    assert r.status_code == 200
    [listed] = r.json()["incidents"]
    assert (listed["id"], listed["revision"], listed["status"]) == (item["id"], 2, "resolved")
    assert listed["body"] == {**item, "revision": 2, "status": "resolved"}
    with pytest.raises(KeyError):
        cloud.queue_update("hub-nope", DISPATCH)


# -- the command line ----------------------------------------------------------------------------


def test_command_line_serves_logs_requests_and_stops_on_sigterm(tmp_path: Path) -> None:
    secret_file = tmp_path / "cloud.secret"
    secret_file.write_bytes(SECRET + b"\n")
    token_file = tmp_path / "operator.token"
    token_file.write_text("operator-token-0123456789\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.server",
            "--db",
            str(tmp_path / "c.db"),
            "--port",
            "0",
            "--hub",
            f"{HUB}={secret_file}",
            "--operator-token-file",
            str(token_file),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        with httpx.Client(base_url=match[1]) as http:
            clock = Clock()
            clock.now = time.time()
            assert send(http, clock, "GET", UPDATES + "?wait=0").status_code == 200
            r = http.get(
                f"/v1/operator/hubs/{HUB}/incidents",
                headers={"Authorization": "Bearer operator-token-0123456789"},
            )
            assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log = line + err
    assert f"GET {UPDATES}?wait=0 200" in log
    assert "HomeGuard-HMAC" not in log
    assert "operator-token-0123456789" not in log
    assert SECRET.decode() not in log
