"""Cloud sync drain rate: a backlog of incident revisions sent to the reference server on loopback.

    python -m bench.drain [--revisions 10000 100000] [--per-incident 4]

For each backlog size: a fresh hub database holding `revisions` incident revisions (`per-incident`
revisions of each incident: three updates and a resolve, as a real leak produces), the reference
dispatch server in its own process, then `homeguard-hub sync flush` with the hub stopped, which
drains the outbox once in its own process. Reported: wall time, incidents and revisions per
second, the draining process's peak RSS (from `wait4`), and whether the server stored every
incident at its newest revision. Baseline, same run and same server: a bare httpx client posting
the same newest revisions, already serialised, in batches of 200 with the contract's signature.
Memory must stay flat as the backlog grows: compare the RSS at 10k and 100k.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import python_module, ratio, spawn, stop, table
from hub.events import IncidentKey, IncidentReport
from hub.incident import Status
from hub.store import incidents as repo
from hub.store import open_database
from sync.signing import authorization
from tests.broker import free_port

HUB_ID = "bench-drain"


def _fill(data_dir: Path, revisions: int, per_incident: int) -> int:
    """Write the backlog through the store's own code; returns the number of incidents."""
    db = open_database(data_dir)
    db.execute("PRAGMA synchronous = OFF")  # setting up the bench, not measuring the store
    incidents = revisions // per_incident
    at = time.time() - 86400
    for n in range(incidents):
        for k in range(per_incident - 1):
            repo.apply_report(
                db,
                IncidentReport(
                    key=IncidentKey.WATER_LEAK,
                    emergency_type="water_damage",
                    severity="critical" if n % 10 == 0 else "high",
                    title=f"Water leak {n}",
                    location="kitchen",
                    source_id="water_leak",
                    source_version="1",
                    at=at + n,
                    sensors=(f"leak-{k}",),
                ),
                HUB_ID,
            )
        current = repo.list_incidents(db, open_only=True, limit=1)[0]
        repo.change_status(db, current.id, Status.RESOLVED, at + n + 0.5)
    db.conn.close()
    return incidents


def _newest_bodies(data_dir: Path) -> list[bytes]:
    with sqlite3.connect(data_dir / "hub.db") as conn:
        return [row[0].encode() for row in conn.execute("SELECT body FROM incidents")]


def _bare_post(url: str, secret: bytes, bodies: list[bytes]) -> float:
    """Seconds for a bare signed httpx client to post `bodies` in batches of 200."""
    path = f"/v1/hubs/{HUB_ID}/incidents"
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(0, len(bodies), 200):
            body = b'{"incidents":[' + b",".join(bodies[i : i + 200]) + b"]}"
            auth = authorization(HUB_ID, secret, "POST", path, int(time.time()), body)
            r = client.post(
                path,
                content=body,
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            r.raise_for_status()
    return time.perf_counter() - started


def _server(workdir: Path, name: str, secret_file: Path) -> tuple[object, str, str]:
    token = secrets.token_urlsafe(24)
    token_file = workdir / f"{name}.token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    port = free_port()
    proc = spawn(
        python_module(
            "sync.server",
            "--db",
            str(workdir / f"{name}.db"),
            "--port",
            str(port),
            "--hub",
            f"{HUB_ID}={secret_file}",
            "--operator-token-file",
            str(token_file),
            "--log-level",
            "WARNING",
        ),
        workdir / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # no event to wait on across processes: poll the port
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, url, token


def _stored(url: str, token: str) -> list[dict[str, object]]:
    r = httpx.get(
        f"{url}/v1/operator/hubs/{HUB_ID}/incidents",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    r.raise_for_status()
    stored: list[dict[str, object]] = r.json()["incidents"]
    return stored


def measure(revisions: int, per_incident: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hg-drain-") as d:
        work = Path(d)
        secret_file = work / "cloud.secret"
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
        secret = secret_file.read_text().strip().encode()
        data = work / "data"
        setup = time.perf_counter()
        incidents = _fill(data, revisions, per_incident)
        setup_s = time.perf_counter() - setup

        server, url, token = _server(work, "hub", secret_file)
        try:
            config = work / "hub.toml"
            config.write_text(
                f'[hub]\nid = "{HUB_ID}"\ndata_dir = "{data}"\nlog_level = "WARNING"\n'
                f'[cloud]\nurl = "{url}"\nsecret_file = "{secret_file}"\n'
            )
            started = time.perf_counter()
            flush = spawn(
                python_module("hub", "-c", str(config), "sync", "flush", "--timeout", "1200"),
                work / "flush.log",
            )
            _, status, usage = os.wait4(flush.pid, 0)
            flush.returncode = os.waitstatus_to_exitcode(status)
            drain_s = time.perf_counter() - started
            stored = _stored(url, token)
        finally:
            stop(server)  # type: ignore[arg-type]
        newest = {s["id"]: s["revision"] for s in stored}
        complete = len(newest) == incidents and set(newest.values()) == {per_incident}

        bare_server, bare_url, _ = _server(work, "bare", secret_file)
        try:
            bare_s = _bare_post(bare_url, secret, _newest_bodies(data))
        finally:
            stop(bare_server)  # type: ignore[arg-type]
    return {
        "revisions": revisions,
        "incidents": incidents,
        "setup_s": setup_s,
        "drain_s": drain_s,
        "exit": flush.returncode,
        "rss_mib": usage.ru_maxrss / 1024,
        "complete": float(complete),
        "bare_s": bare_s,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--revisions", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--per-incident", type=int, default=4)
    args = p.parse_args(argv)
    rows = []
    for n in args.revisions:
        r = measure(n, args.per_incident)
        print(
            f"{n} revisions of {int(r['incidents'])} incidents (setup {r['setup_s']:.1f} s): "
            f"drained in {r['drain_s']:.2f} s, exit {int(r['exit'])}, peak RSS "
            f"{r['rss_mib']:.1f} MiB, every incident stored at its newest revision: "
            f"{bool(r['complete'])}; bare httpx {r['bare_s']:.2f} s",
            flush=True,
        )
        rows.append(
            (
                f"{n:,}",
                f"{r['incidents'] / r['drain_s']:,.0f}",
                f"{n / r['drain_s']:,.0f}",
                f"{r['incidents'] / r['bare_s']:,.0f}",
                f"{ratio(r['bare_s'], r['drain_s']):.0%}",
                f"{r['rss_mib']:.1f}",
                "yes" if r["complete"] else "NO",
            )
        )
    print()
    print(
        table(
            (
                "backlog (revisions)",
                "hub incidents/s",
                "hub revisions/s",
                "bare httpx incidents/s",
                "hub/bare",
                "drainer peak RSS MiB",
                "all stored, newest",
            ),
            rows,
        )
    )
    print("\n(peak RSS: the whole `homeguard-hub sync flush` process, from wait4)")


if __name__ == "__main__":
    main()
