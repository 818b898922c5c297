"""The one door to SQLite: a single worker thread that owns the connection."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar

import sqlite_utils

from hub.store.db import convert, open_database

P = ParamSpec("P")
T = TypeVar("T")


class DbWorker:
    """`async with DbWorker(data_dir) as db: await db.run(fn, *args)` runs `fn(database, *args)`
    on the worker thread, in order, so writes never race and the event loop never blocks."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db")
        self._db: sqlite_utils.Database | None = None

    async def __aenter__(self) -> DbWorker:
        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._executor, open_database, self._data_dir)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.conn.close)
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(database, *args)` on the worker thread; any sqlite3 error it raises comes out as
        the store's own (`StoreError` and kin), which every caller handles: a database locked
        by another process past the busy timeout must not end the daemon."""
        if self._db is None:
            raise RuntimeError("DbWorker used outside its `async with`")
        call = functools.partial(_converted, fn, self._db, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _converted(fn: Callable[..., T], db: sqlite_utils.Database, *args: object) -> T:
    try:
        return fn(db, *args)
    except sqlite3.DatabaseError as err:
        raise convert(err) from err
