"""`homeguard-hub sync status` and `sync flush`: what the cloud sync is doing, read from the store
and the running hub's health row."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import sqlite_utils

from hub.cli_output import ago, emit_json, table, when
from hub.config import Config
from hub.store import hubstate, outbox

Running = Callable[[dict[str, Any], float], bool]


def _report(config: Config, db: sqlite_utils.Database, running: Running) -> dict[str, Any]:
    now = time.time()
    state = hubstate.read(db)
    is_running = running(state, now)
    cloud = state.get("cloud")
    link = cloud if isinstance(cloud, dict) else {}
    depth = outbox.depth_by_kind(db)
    oldest = min((d["oldest_created_at"] for d in depth.values()), default=None)
    sync_state = outbox.read_state(db)
    return {
        "configured": config.cloud is not None,
        "url": config.cloud.url if config.cloud else None,
        "hub_running": is_running,
        # The link as the running hub last saw it; a stopped hub has no link.
        "link": link.get("state", "unknown") if is_running else "hub not running",
        "last_ok_at": link.get("last_ok_at"),
        "last_error": link.get("last_error"),
        "last_error_at": link.get("last_error_at"),
        "clock_skew_s": link.get("clock_skew_s"),
        "retry_at": link.get("retry_at") if is_running else None,
        "outbox": depth,
        "outbox_pending": sum(d["pending"] for d in depth.values()),
        "oldest_pending_age_s": None if oldest is None else max(0.0, now - oldest),
        "dead_letters": outbox.dead_letter_count(db),
        "recent_dead_letters": [
            {
                "kind": d.kind,
                "id": d.ref_id,
                "revision": d.revision,
                "reason": d.reason,
                "failed_at": d.failed_at,
            }
            for d in outbox.dead_letters(db, limit=20)
        ],
        "telemetry_dropped": sync_state.get(outbox.STATE_TELEMETRY_DROPPED, 0),
        "updates_cursor": sync_state.get(outbox.STATE_CURSOR),
        "counters": {k: v for k, v in link.items() if isinstance(v, int) and k != "retry_at"},
    }


def sync_status(
    config: Config, db: sqlite_utils.Database, *, as_json: bool, running: Running
) -> int:
    report = _report(config, db, running)
    if as_json:
        emit_json(report)
        return 0
    now = time.time()
    if not report["configured"]:
        print("cloud sync: not configured (no [cloud] section); the outbox keeps everything")
    else:
        print(f"cloud sync to {report['url']}: {str(report['link']).upper()}")
        print(
            f"  last success {ago(report['last_ok_at'], now)}"
            + (f"; next try {when(report['retry_at'])}" if report["retry_at"] else "")
        )
    if report["last_error"]:
        print(f"  last error ({ago(report['last_error_at'], now)}): {report['last_error']}")
    if report["clock_skew_s"] is not None:
        print(
            f"  CLOCK SKEW: this hub's clock is {-report['clock_skew_s']:+.0f} s off the "
            "server's (check NTP)"
        )
    age = report["oldest_pending_age_s"]
    print(
        f"  outbox: {report['outbox_pending']} pending"
        + (f", oldest {ago(now - age, now)}" if age is not None else "")
    )
    for kind, d in report["outbox"].items():
        print(f"    {kind}: {d['pending']} (oldest {ago(d['oldest_created_at'], now)})")
    if report["telemetry_dropped"]:
        print(f"  telemetry dropped over the outbox budget: {report['telemetry_dropped']}")
    print(f"  dead letters (refused by the cloud, kept here): {report['dead_letters']}")
    if report["recent_dead_letters"]:
        print(
            table(
                ("KIND", "ID", "REV", "WHEN", "REASON"),
                [
                    (d["kind"], d["id"][:8], d["revision"], when(d["failed_at"]), d["reason"])
                    for d in report["recent_dead_letters"]
                ],
            )
        )
    return 0


def sync_flush(
    config: Config,
    db: sqlite_utils.Database,
    *,
    timeout_s: float,
    running: Running,
    flush_once: Callable[[Config, float], Any],
) -> int:
    """Ask the running hub (SIGUSR1) and watch the outbox empty; else drain from this process."""
    if config.cloud is None:
        print("no [cloud] section in the configuration: nothing to flush to", file=sys.stderr)
        return 2
    now = time.time()
    state = hubstate.read(db)
    pid = state.get("pid")
    if running(state, now) and isinstance(state.get("cloud"), dict) and isinstance(pid, int):
        os.kill(pid, signal.SIGUSR1)
        print(f"asked the running hub (pid {pid}) to send its outbox now")
        return _watch(db, timeout_s)
    result = flush_once(config, timeout_s)
    print(
        f"hub not running: sent from here; {result.delivered} delivered, "
        f"{result.dead_lettered} refused (dead letters)"
    )
    if result.error:
        print(f"stopped: {result.error}", file=sys.stderr)
        return 1
    return 0


def _watch(db: sqlite_utils.Database, timeout_s: float) -> int:
    """Poll the outbox depth (this is a separate process: the database is what it can see)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = outbox.pending_count(db)
        if pending == 0:
            print("outbox empty: everything delivered")
            return 0
        if time.monotonic() > deadline:
            print(f"{pending} still pending after {timeout_s:g} s; see `sync status`")
            return 1
        time.sleep(0.5)
