"""`homeguard-hub incidents ...`: list, show, acknowledge and resolve."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from hub import topics
from hub.cli_common import EXIT_NOT_FOUND, existing_database
from hub.cli_output import emit_json, table, when
from hub.config import Config
from hub.incident import Incident, Status, to_json, to_wire
from hub.store import incidents as incident_repo


def incidents_list(args: argparse.Namespace, config: Config) -> int:
    found = incident_repo.list_incidents(existing_database(config), open_only=not args.all)
    if args.json:
        emit_json([to_wire(i) for i in found])
        return 0
    if not found:
        print("no open incidents" if not args.all else "no incidents")
        return 0
    print(
        table(
            ("ID", "REV", "SEVERITY", "TYPE", "STATUS", "DETECTED", "TITLE"),
            [
                (
                    i.id[:8],
                    i.revision,
                    i.severity,
                    i.emergency_type,
                    i.status,
                    when(i.detected_at),
                    i.title,
                )
                for i in found
            ],
        )
    )
    return 0


def incident_one(args: argparse.Namespace, config: Config) -> int:
    db = existing_database(config)
    found = incident_repo.get_incident(db, args.id)
    if found is None:
        print(
            f"no incident matches {args.id!r} (use the id or a unique prefix of 4+ "
            "characters; see `incidents list --all`)",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if args.action != "show":
        status = Status.ACKNOWLEDGED if args.action == "ack" else Status.RESOLVED
        found = incident_repo.change_status(db, found.id, status, time.time())
        _announce(config, found)
    if args.json:
        emit_json(to_wire(found))
        return 0
    _print_incident(found)
    return 0


def _print_incident(i: Incident) -> None:
    print(f"{i.title}\n  id {i.id} (revision {i.revision})")
    print(f"  {i.severity} {i.emergency_type}, {i.status}; location {i.location or '-'}")
    print(
        f"  detected {when(i.detected_at)}, updated {when(i.updated_at)}"
        + (f", resolved {when(i.resolved_at)}" if i.resolved_at else "")
    )
    print(f"  sensors: {', '.join(i.sensors) or '-'}" + ("  [ESCALATED]" if i.escalated else ""))
    for e in i.evidence:
        print(f"  evidence: {e.sensor_id} {e.measurement}={e.value} at {when(e.at)}")
    for a in i.actions:
        print(
            f"  action: {a.action} {a.target}: {a.result} after {a.attempts} attempt(s)"
            + (f" ({a.detail})" if a.detail else "")
        )
    if i.dispatch is not None:
        d = i.dispatch
        who = ""
        if d.contractor is not None:
            who = f": {d.contractor.name}" + (
                f" ({d.contractor.phone})" if d.contractor.phone else ""
            )
        eta = d.eta if d.eta is not None else (d.contractor.eta if d.contractor else None)
        print(
            f"  dispatch: {d.status}{who}"
            + (f", ETA {when(eta)}" if eta else "")
            + (f" — {d.note}" if d.note else "")
            + f" (at {when(d.at)})"
        )
    for n, step in enumerate(i.response_plan, 1):
        print(f"  {n}. {step}")


def _announce(config: Config, incident: Incident) -> None:
    """Publish the new revision on the incident's retained topic (best effort: the running hub
    republishes every incident from the database when it next connects)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"homeguard-cli-{os.getpid()}")
    if config.mqtt.username:
        client.username_pw_set(config.mqtt.username, config.mqtt.password())
    if config.mqtt.tls is not None:
        tls = config.mqtt.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
    try:
        client.connect(config.mqtt.broker_host, config.mqtt.port, keepalive=10)
        client.loop_start()
        info = client.publish(
            topics.hub_incident(config.hub.id, incident.id), to_json(incident), qos=1, retain=True
        )
        info.wait_for_publish(timeout=5)
        client.disconnect()
        client.loop_stop()
    except (OSError, RuntimeError, ValueError) as err:
        logging.getLogger(__name__).warning("incident saved; MQTT announcement failed: %s", err)
