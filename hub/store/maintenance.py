"""Maintenance tasks the cloud's planner sent (`sync/updates.py`), kept by task id.

The updates poller stores a task before it stores the cursor past it, so a task is never lost:
a crash in between brings the same update again, and storing it again changes nothing. A task
sent again with the same id replaces the kept one only if it was sent later (updates can come
twice, and in any order after a cursor reset).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass

import sqlite_utils

from hub.events import MaintenanceTask
from hub.store.db import transaction

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeptTask:
    task: MaintenanceTask
    sent_at: float  # the update's `at`


def keep(db: sqlite_utils.Database, task: MaintenanceTask, sent_at: float) -> bool:
    """Keep `task` unless a version sent later is kept; whether it changed what is kept."""
    with transaction(db):
        cursor = db.conn.execute(
            "INSERT INTO maintenance_tasks (id, task, sent_at, due) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET task = excluded.task, sent_at = excluded.sent_at, "
            "due = excluded.due WHERE excluded.sent_at > maintenance_tasks.sent_at",
            (task.id, json.dumps(dataclasses.asdict(task)), sent_at, task.due),
        )
        return cursor.rowcount > 0


def kept(db: sqlite_utils.Database) -> list[KeptTask]:
    """The kept tasks, soonest due first. A row that no longer reads as a task (a damaged
    database) is logged and left out."""
    out = []
    for task_id, body, sent_at in db.execute(
        "SELECT id, task, sent_at FROM maintenance_tasks ORDER BY due, id"
    ):
        try:
            task = MaintenanceTask(**json.loads(body))
        except (ValueError, TypeError) as err:
            _log.warning("maintenance task %r is unreadable (%s); left out", task_id, err)
            continue
        out.append(KeptTask(task, sent_at))
    return out
