"""sync/openapi.json is valid OpenAPI 3.1, and the reference server answers as it says.

Schemathesis generates requests from the document (bounded: a few examples per operation) and
checks every answer's status code, content type, headers and body against it. Requests are signed
per request with the contract's HMAC by an auth provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.generation import GenerationMode

from sync.server import RunningServer, serve
from sync.signing import authorization

Case = schemathesis.Case[Any]
DOCUMENT = Path(__file__).resolve().parents[1] / "sync" / "openapi.json"
HUB = "hub-conformance"
SECRET = b"c" * 32
OPERATOR_TOKEN = "operator-conformance-token"  # noqa: S105 - a loopback test server's token

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(modes=[GenerationMode.POSITIVE])


def test_the_document_is_valid_openapi_3_1() -> None:
    raw = json.loads(DOCUMENT.read_text())
    assert raw["openapi"].startswith("3.1")
    validate(raw)


def test_the_document_covers_every_endpoint() -> None:
    raw = json.loads(DOCUMENT.read_text())
    operations = {
        (method.upper(), path)
        for path, item in raw["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("POST", "/v1/hubs/{hub_id}/incidents"),
        ("POST", "/v1/hubs/{hub_id}/heartbeat"),
        ("GET", "/v1/hubs/{hub_id}/updates"),
        ("POST", "/v1/hubs/{hub_id}/telemetry"),
        ("POST", "/v1/operator/hubs/{hub_id}/updates"),
        ("GET", "/v1/operator/hubs/{hub_id}/incidents"),
    }
    update = raw["components"]["schemas"]["Update"]
    assert update["discriminator"]["propertyName"] == "type"
    assert raw["components"]["securitySchemes"]["HomeGuardHMAC"] == {
        **raw["components"]["securitySchemes"]["HomeGuardHMAC"],
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }


@schema.auth()
class HomeGuardAuth:
    """Signs each generated request as a hub (or with the operator's token on operator paths).

    Before signing (which covers the exact path, query and body bytes the transport will send) it
    pins `hub_id` to the one hub the server knows, `after` to a cursor the server issued (a random
    string is rightly a 400: cursors are opaque, the server's own), and caps `wait` at 1 s so a long
    poll with nothing new cannot hold the suite for 30 s.
    """

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> bytes:
        return SECRET

    def set(self, case: Case, data: bytes, ctx: schemathesis.AuthContext) -> None:
        case.path_parameters["hub_id"] = HUB
        if "wait" in case.query:
            case.query["wait"] = min(int(case.query["wait"]), 1)
        if "after" in case.query:
            case.query["after"] = "0"
        if case.path.startswith("/v1/operator/"):
            case.headers["Authorization"] = f"Bearer {OPERATOR_TOKEN}"
            return
        case.headers.pop("Authorization", None)
        prepared = requests.Request(**_request_kwargs(case)).prepare()
        body = prepared.body or b""
        content = body.encode() if isinstance(body, str) else bytes(body)  # type: ignore[arg-type]  # prepared bodies are str or bytes here
        case.headers["Authorization"] = authorization(
            HUB, data, case.method, prepared.path_url, int(time.time()), content
        )


def _request_kwargs(case: Case) -> dict[str, Any]:
    kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1")
    allowed = {"method", "url", "headers", "params", "data", "json", "cookies", "files"}
    return {key: value for key, value in kwargs.items() if key in allowed}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("conformance") / "cloud.db"
    with serve(db, {HUB: SECRET}, operator_token=OPERATOR_TOKEN) as running:
        running.queue_update(
            HUB,
            {
                "type": "maintenance",
                "task": {
                    "id": "t-1",
                    "title": "Replace smoke detector batteries",
                    "system": "safety",
                    "due": "2026-10-01",
                    "priority": "high",
                },
            },
        )
        yield running


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_reference_server_conforms(case: Case, cloud: RunningServer) -> None:
    response = case.call(base_url=cloud.url, timeout=10)
    assert response.status_code < 500, response.text
    case.validate_response(response)
