"""`homeguard-hub maintenance`: the maintenance tasks the cloud's planner sent, soonest due first."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import date

from hub.cli_common import existing_database
from hub.cli_output import emit_json, table, when
from hub.config import Config
from hub.events import MaintenanceTask
from hub.store import maintenance as maintenance_repo


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `maintenance` on the CLI's subcommands."""
    p = subparsers.add_parser(
        "maintenance", help="maintenance tasks from the cloud's planner, soonest due first"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=maintenance_list)


def maintenance_list(args: argparse.Namespace, config: Config) -> int:
    found = maintenance_repo.kept(existing_database(config))
    if args.json:
        emit_json([{**dataclasses.asdict(k.task), "sent_at": k.sent_at} for k in found])
        return 0
    if not found:
        print("no maintenance tasks (the cloud sends them once the hub is linked to an account)")
        return 0
    today = date.today().isoformat()
    rows = [
        (
            k.task.due + (" (overdue)" if k.task.due < today else ""),
            k.task.priority,
            k.task.system,
            _repeats(k.task),
            when(k.sent_at),
            k.task.title,
        )
        for k in found
    ]
    print(table(("DUE", "PRIORITY", "SYSTEM", "REPEATS", "SENT", "TITLE"), rows))
    return 0


def _repeats(task: MaintenanceTask) -> str:
    every = []
    if task.every_days is not None:
        every.append(f"{task.every_days} d")
    if task.every_runtime_h is not None:
        every.append(f"{task.every_runtime_h:g} h of runtime")
    return "every " + " or ".join(every) if every else "once"
