"""The one door to SQLite: a single worker thread that owns the connection."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar

import sqlite_utils

from hub.errors import StoreError
from hub.store.db import convert, open_database

_log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class DbWorker:
    """`async with DbWorker(data_dir) as db: await db.run(fn, *args)` runs `fn(database, *args)`
    on the worker thread, in order, so writes never race and the event loop never blocks.

    With `open_later=True` (the daemon) a database that cannot be opened at start (a full disk, a
    data dir it may not write) does not stop the hub: the failure is logged, `open_error` says it,
    every `run` raises `StoreError` — which every caller handles by waiting and retrying — and
    tries to open it again, so the store comes back on its own once the cause is gone. Nor does
    it wait for the open at start: the first jobs queue behind it. The leak path never waits for
    the store."""

    def __init__(self, data_dir: Path, *, open_later: bool = False) -> None:
        self._data_dir = data_dir
        self._open_later = open_later
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db")
        self._db: sqlite_utils.Database | None = None
        self._entered = False
        #: Why the database is not open (None: it is, or it has not been tried yet).
        self.open_error: str | None = None

    async def __aenter__(self) -> DbWorker:
        loop = asyncio.get_running_loop()
        if self._open_later:
            # The daemon does not wait for the open: its integrity check reads the whole file
            # (half a minute for a large database on a cold cache, after a power cut) and the
            # leak path starts now. Every job queues behind the open on the one worker thread.
            loop.run_in_executor(self._executor, self._database).add_done_callback(self._opened)
            self._entered = True
            return self
        try:
            await loop.run_in_executor(self._executor, self._database)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        self._entered = True
        return self

    def _opened(self, opening: asyncio.Future[sqlite_utils.Database]) -> None:
        """The start-up open's outcome (`open_later`): a failure is said, and the next job
        tries again."""
        if opening.cancelled():
            return
        err = opening.exception()
        if isinstance(err, StoreError):
            _log.error(
                "cannot open the database in %s (%s): the hub runs on and protects the home; "
                "incidents wait in memory and the database is tried again with each write",
                self._data_dir,
                err,
            )
        elif err is not None:
            _log.error("opening the database in %s failed", self._data_dir, exc_info=err)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.conn.close)
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(database, *args)` on the worker thread; any sqlite3 error it raises comes out as
        the store's own (`StoreError` and kin), which every caller handles: a database locked
        by another process past the busy timeout must not end the daemon."""
        if not self._entered:
            raise RuntimeError("DbWorker used outside its `async with`")
        call = functools.partial(self._call, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        db = self._database()
        try:
            return fn(db, *args)
        except sqlite3.DatabaseError as err:
            raise convert(err) from err

    def _database(self) -> sqlite_utils.Database:
        """The open database, opened now if it is not (on the worker thread)."""
        if self._db is None:
            try:
                self._db = open_database(self._data_dir)
            except StoreError as err:
                self.open_error = str(err)
                raise
            except OSError as err:  # e.g. moving a corrupt file aside on a read-only disk
                self.open_error = f"{self._data_dir}: {err}"
                raise StoreError(self.open_error) from err
            if self.open_error is not None:
                _log.warning("database in %s opened at last", self._data_dir)
                self.open_error = None
        return self._db
