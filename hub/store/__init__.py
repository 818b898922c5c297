"""The SQLite store: schema and migrations, one worker thread, and the repositories on top.

All database work happens on the `DbWorker` thread; the event loop never touches SQLite.
"""

from hub.store import _lean_import  # noqa: F401  # first: before anything imports sqlite_utils
from hub.store.db import open_database
from hub.store.worker import DbWorker

__all__ = ["DbWorker", "open_database"]
