"""`homeguard-hub sync flush` when the hub is not running: drain the outbox once, from the CLI's
own process, and stop at the first failure (the running hub retries; a command should not)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hub.clock import SystemClock
from hub.config import Config
from hub.store import DbWorker
from sync.client import DispatchClient, SecretError, read_secret
from sync.drainer import Drainer
from sync.link import Link


@dataclass(frozen=True, slots=True)
class FlushResult:
    delivered: int
    dead_lettered: int
    error: str | None


class _GaveUp(Exception):
    """The drainer asked to wait: a failure, which this one-shot drain reports instead."""


async def _give_up(_delay: float) -> None:
    raise _GaveUp


async def flush_once(config: Config, timeout_s: float) -> FlushResult:
    cloud = config.cloud
    if cloud is None:
        return FlushResult(0, 0, "no [cloud] section in the configuration")
    try:
        secret = read_secret(cloud.secret_file)
    except SecretError as err:
        return FlushResult(0, 0, str(err))
    clock = SystemClock()
    link = Link(clock)
    async with DbWorker(config.hub.data_dir) as db:
        async with DispatchClient(
            base_url=cloud.url,
            hub_id=config.hub.id,
            secret=secret,
            clock=clock,
            ca_file=cloud.ca_file,
        ) as client:
            drainer = Drainer(
                db=db, client=client, link=link, clock=clock, sleep=_give_up, wake=asyncio.Event()
            )
            error: str | None = None
            try:
                async with asyncio.timeout(timeout_s), asyncio.TaskGroup() as tg:
                    task = tg.create_task(drainer.run())
                    await drainer.drained()
                    task.cancel()
            except* _GaveUp:
                error = link.last_error or "failed"
            except* TimeoutError:
                error = f"not finished after {timeout_s:g} s"
    return FlushResult(drainer.delivered, drainer.dead_lettered, error)
