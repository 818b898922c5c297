"""The reference dispatch server: the cloud side of the dispatch API, for development and tests.

    with serve(tmp_path / "cloud.db", {"hub-1": secret}) as cloud:
        cursor = cloud.queue_update("hub-1", {"type": "dispatch", "incident_id": ..., "status": "en_route"})
        ...  # point the hub's client at cloud.url
        assert cloud.stored_revisions("hub-1") == [(incident_id, 1)]

Stdlib `ThreadingHTTPServer` + SQLite; see docs/reference-server.md. Not a production server.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.server.handler import MAX_BODY_BYTES, HubServer, RateLimit
from sync.server.models import OperatorUpdate, rfc3339
from sync.server.storage import Storage

__all__ = ["MAX_BODY_BYTES", "RateLimit", "RunningServer", "serve"]


@dataclass
class RunningServer:
    """A server started by `serve`, with the hooks tests use to drive and inspect it."""

    url: str
    operator_token: str
    _server: HubServer

    def queue_update(self, hub_id: str, update: dict[str, Any]) -> str:
        """Queue a dispatch or maintenance update (without cursor) for a hub; its cursor.

        `at` defaults to the server's clock. Raises KeyError for an unknown hub and
        pydantic.ValidationError for an update the operator endpoint would refuse.
        """
        if hub_id not in self._server.hubs:
            raise KeyError(hub_id)
        parsed = OperatorUpdate.model_validate({"update": update}).update
        body = parsed.model_dump(exclude_none=True)
        if "at" not in body:
            body["at"] = rfc3339(self._server.clock())
        cursor, _ = self._server.storage.queue_update(hub_id, body)
        return cursor

    def incidents(self, hub_id: str) -> list[dict[str, Any]]:
        """The stored body of each incident of a hub, at its newest revision."""
        return [stored.body for stored in self._server.storage.incidents(hub_id)]

    def stored_revisions(self, hub_id: str) -> list[tuple[str, int]]:
        """Every (id, revision) ever accepted for a hub, in the order stored (no duplicates)."""
        return self._server.storage.stored_revisions(hub_id)

    def last_heartbeat(self, hub_id: str) -> dict[str, Any] | None:
        return self._server.storage.last_heartbeat(hub_id)

    def telemetry(self, hub_id: str) -> list[dict[str, Any]]:
        """The stored rollups of a hub, one per (sensor_id, measurement, period_start)."""
        return self._server.storage.telemetry(hub_id)

    def wait_for_long_polls(self, hub_id: str, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until `count` GET /updates of a hub are waiting in the server; False on timeout."""
        return self._server.storage.wait_for_pollers(hub_id, count, timeout_s)

    def set_fault(self, kind: str | None, count: int = 1) -> None:
        """Make the next `count` hub requests fail: "500", "429" (Retry-After: 1), "413",
        "slow" (answer after 2 s), "reset" (close without answering); None clears it."""
        self._server.faults.arm(kind, count)


@contextlib.contextmanager
def serve(
    db_path: Path,
    hubs: dict[str, bytes],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    operator_token: str | None = None,
    clock: Callable[[], float] = time.time,
    rate_limit: RateLimit | None = None,
) -> Iterator[RunningServer]:
    """Run the reference server in a background thread until the block exits."""
    storage = Storage(db_path, clock)
    try:
        server = HubServer(
            (host, port),
            storage=storage,
            hubs=hubs,
            operator_token=operator_token or secrets.token_urlsafe(24),
            clock=clock,
            rate_limit=rate_limit,
        )
    except BaseException:
        storage.close()
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="reference-server"
    )
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host!s}]" if ":" in str(bound_host) else str(bound_host)
    try:
        yield RunningServer(f"http://{shown}:{bound_port}", server.operator_token, server)
    finally:
        server.shutdown()
        thread.join()
        storage.stop_polls()
        server.drain(timeout_s=5)
        server.close_connections()
        server.server_close()  # joins the handler threads
        storage.close()
