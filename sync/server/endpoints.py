"""What each endpoint answers, apart from HTTP plumbing: bytes and parameters in, a Reply out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from sync.server.models import (
    MAX_ITEMS,
    Heartbeat,
    Incident,
    IncidentBatch,
    OperatorUpdate,
    Rollup,
    TelemetryBatch,
    describe,
    rfc3339,
)
from sync.server.storage import ItemResult, Storage, cursor_of, parse_cursor

__all__ = ["MAX_WAIT_S", "Reply", "Service"]

#: Longest long poll the contract allows (seconds).
MAX_WAIT_S = 30


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Service:
    """The endpoints of the dispatch API and of the operator, over one Storage."""

    def __init__(self, storage: Storage, now: Any) -> None:
        self._storage = storage
        self._now = now

    def _reply(self, status: int, body: dict[str, Any], **headers: str) -> Reply:
        return Reply(status, {**body, "server_time": rfc3339(self._now())}, headers)

    def error(self, status: int, message: str, **headers: str) -> Reply:
        return self._reply(status, {"error": message}, **headers)

    def _json(self, raw: bytes) -> Any:
        return json.loads(raw.decode("utf-8"))

    # -- hub endpoints -------------------------------------------------------------------------

    def post_incidents(self, hub_id: str, raw: bytes) -> Reply:
        try:
            batch = IncidentBatch.model_validate(self._json(raw))
        except (ValueError, ValidationError) as err:
            return self.error(400, _batch_error(err, "incidents"))
        if len(batch.incidents) > MAX_ITEMS:
            return self.error(413, f"a batch holds at most {MAX_ITEMS} incidents; split it")
        results = [self._upsert(hub_id, item) for item in batch.incidents]
        return self._reply(200, {"results": results})

    def _upsert(self, hub_id: str, item: Any) -> dict[str, Any]:
        ident = item.get("id") if isinstance(item, dict) else None
        revision = item.get("revision") if isinstance(item, dict) else None
        result: dict[str, Any] = {
            "id": ident if isinstance(ident, str) else None,
            "revision": revision if type(revision) is int else None,
        }
        try:
            incident = Incident.model_validate(item)
        except ValidationError as err:
            return {**result, "result": ItemResult.REJECTED.value, "error": describe(err)}
        if incident.hub_id != hub_id:
            error = f"hub_id: {incident.hub_id!r} is not the hub in the path ({hub_id!r})"
            return {**result, "result": ItemResult.REJECTED.value, "error": error}
        result["revision"] = incident.revision
        body = json.dumps(item, separators=(",", ":")).encode()
        outcome = self._storage.upsert_incident(hub_id, incident.id, incident.revision, body)
        return {**result, "result": outcome.value}

    def post_heartbeat(self, hub_id: str, raw: bytes) -> Reply:
        try:
            body = self._json(raw)
            Heartbeat.model_validate(body)
        except ValidationError as err:
            return self.error(400, describe(err))
        except ValueError as err:
            return self.error(400, f"body is not JSON: {err}")
        self._storage.record_heartbeat(hub_id, body)
        return self._reply(200, {})

    def post_telemetry(self, hub_id: str, raw: bytes) -> Reply:
        try:
            batch = TelemetryBatch.model_validate(self._json(raw))
        except (ValueError, ValidationError) as err:
            return self.error(400, _batch_error(err, "rollups"))
        if len(batch.rollups) > MAX_ITEMS:
            return self.error(413, f"a batch holds at most {MAX_ITEMS} rollups; split it")
        for index, item in enumerate(batch.rollups):
            try:
                Rollup.model_validate(item)
            except ValidationError as err:
                return self.error(400, f"rollups.{index}: {describe(err)}")
        accepted = self._storage.upsert_rollups(hub_id, batch.rollups)
        return self._reply(200, {"accepted": accepted})

    def get_updates(self, hub_id: str, query: str) -> Reply:
        params = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - {"after", "wait"})
        if unknown:
            return self.error(400, f"unknown query parameter(s): {', '.join(unknown)}")
        if any(len(values) > 1 for values in params.values()):
            return self.error(400, "a query parameter is repeated")
        after = 0
        if "after" in params:
            parsed = parse_cursor(params["after"][0])
            if parsed is None:
                return self.error(400, "after: not a cursor this server issued")
            after = parsed
        wait = 0
        if "wait" in params:
            text = params["wait"][0]
            if not (text.isascii() and text.isdigit()) or int(text) > MAX_WAIT_S:
                return self.error(400, f"wait: an integer number of seconds, 0 to {MAX_WAIT_S}")
            wait = int(text)
        updates, resume = self._storage.wait_for_updates(hub_id, after, wait)
        return self._reply(200, {"updates": updates, "next": cursor_of(resume)})

    # -- operator endpoints --------------------------------------------------------------------

    def post_operator_update(self, hub_id: str, raw: bytes) -> Reply:
        try:
            update = OperatorUpdate.model_validate({"update": self._json(raw)}).update
        except ValidationError as err:
            return self.error(400, describe(err))
        except ValueError as err:
            return self.error(400, f"body is not JSON: {err}")
        body = update.model_dump(exclude_none=True)
        body.setdefault("at", rfc3339(self._now()))
        cursor, stored = self._storage.queue_update(hub_id, body)
        return self._reply(201, {"cursor": cursor, "update": stored})

    def get_operator_incidents(self, hub_id: str) -> Reply:
        incidents = [
            {"id": i.id, "revision": i.revision, "status": i.status, "body": i.body}
            for i in self._storage.incidents(hub_id)
        ]
        return self._reply(200, {"incidents": incidents})


def _batch_error(err: Exception, key: str) -> str:
    if isinstance(err, ValidationError):
        return f'not a batch: expected {{"{key}": [1 to {MAX_ITEMS} items]}} ({describe(err)})'
    return f"body is not JSON: {err}"
