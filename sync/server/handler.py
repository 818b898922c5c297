"""HTTP plumbing of the reference server: routing, authentication, limits, faults, logging."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, get_args

from sync.server.endpoints import Reply, Service
from sync.server.storage import Storage
from sync.signing import MAX_SKEW_S, parse_authorization, verify

__all__ = ["MAX_BODY_BYTES", "Fault", "HubServer", "RateLimit"]

logger = logging.getLogger(__name__)

#: Largest request body the contract allows.
MAX_BODY_BYTES = 1024 * 1024

Fault = Literal["500", "429", "413", "slow", "reset"]
_FAULTS: frozenset[str] = frozenset(get_args(Fault))
_SLOW_S = 2.0
_SLOWED = Reply(0, {})  # sentinel: the `slow` fault delayed the request, which goes on

_HUB_ROUTE = re.compile(
    r"^/v1/hubs/(?P<hub>[^/?]+)/(?P<endpoint>incidents|heartbeat|updates|telemetry)$"
)
_OPERATOR_ROUTE = re.compile(r"^/v1/operator/hubs/(?P<hub>[^/?]+)/(?P<endpoint>updates|incidents)$")
_HUB_METHODS = {"incidents": "POST", "heartbeat": "POST", "updates": "GET", "telemetry": "POST"}
_OPERATOR_METHODS = {"updates": "POST", "incidents": "GET"}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `requests` hub requests per hub in each window of `per_s` seconds."""

    requests: int
    per_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """`N/SECONDS`, e.g. `60/60`."""
        count, _, seconds = text.partition("/")
        limit = cls(int(count), float(seconds or "1"))
        if limit.requests < 1 or limit.per_s <= 0:
            raise ValueError("a rate limit is N/SECONDS with N >= 1 and SECONDS > 0")
        return limit


@dataclass(slots=True)
class _Limiter:
    limit: RateLimit | None
    clock: Callable[[], float]
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, hub_id: str) -> int | None:
        """None if the request may go on, else whole seconds until the hub's window ends."""
        if self.limit is None:
            return None
        now = self.clock()
        with self._lock:
            start, count = self._windows.get(hub_id, (now, 0))
            if now - start >= self.limit.per_s:
                start, count = now, 0
            if count >= self.limit.requests:
                return max(1, math.ceil(start + self.limit.per_s - now))
            self._windows[hub_id] = (start, count + 1)
            return None


@dataclass(slots=True)
class _Faults:
    kind: Fault | None = None
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, kind: str | None, count: int) -> None:
        if kind is not None and kind not in _FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(_FAULTS)} or None")
        with self._lock:
            self.kind, self.count = (kind, count) if kind is not None and count > 0 else (None, 0)  # type: ignore[assignment]  # checked against _FAULTS above

    def take(self) -> Fault | None:
        with self._lock:
            if self.kind is None or self.count <= 0:
                return None
            self.count -= 1
            kind = self.kind
            if self.count == 0:
                self.kind = None
            return kind


class HubServer(ThreadingHTTPServer):
    """A threaded HTTP server holding what the handlers share; every connection is closed on stop."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        storage: Storage,
        hubs: dict[str, bytes],
        operator_token: str,
        clock: Callable[[], float],
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.storage = storage
        self.hubs = dict(hubs)
        self.operator_token = operator_token
        self.clock = clock
        self.service = Service(storage, clock)
        self.faults = _Faults()
        self.limiter = _Limiter(rate_limit, clock)
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark one request in progress, so a stop lets it answer before closing connections."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait for the requests in progress to be answered; False if some still are."""
        self.stopping.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout_s)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._connections_lock:
            self._connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set():
            logger.debug("error on a connection closed by the stop", exc_info=True)
        else:
            logger.exception("error while handling a request from %s", client_address)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")


class _Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "HomeGuardReference/1"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.monotonic()
        with self.server.busy():
            status = self._route()
        logger.info(
            "%s %s %s %.1f ms",
            self.command,
            self.path,
            status if status else "reset",
            (time.monotonic() - started) * 1000,
        )

    def _route(self) -> int | None:
        path, _, query = self.path.partition("?")
        if m := _HUB_ROUTE.match(path):
            return self._hub(m["hub"], m["endpoint"], query)
        if m := _OPERATOR_ROUTE.match(path):
            return self._operator(m["hub"], m["endpoint"])
        self._discard_body()
        return self._send(self.server.service.error(404, f"no such endpoint: {path}"))

    def _hub(self, hub_id: str, endpoint: str, query: str) -> int | None:
        reply = self._hub_reply(hub_id, endpoint, query)
        return None if reply is None else self._send(reply)

    def _hub_reply(self, hub_id: str, endpoint: str, query: str) -> Reply | None:
        """The answer to a hub request; None to reset the connection instead."""
        body = self._admit(hub_id, endpoint)
        if isinstance(body, Reply):
            return body
        fault = self.server.faults.take()
        if fault is not None and (injected := self._inject(fault)) is not _SLOWED:
            return injected
        refused = self._authenticate(hub_id, body) or self._rate_limited(hub_id)
        if refused is not None:
            return refused
        service = self.server.service
        if endpoint == "updates":
            return service.get_updates(hub_id, query)
        post = {
            "incidents": service.post_incidents,
            "heartbeat": service.post_heartbeat,
            "telemetry": service.post_telemetry,
        }
        return post[endpoint](hub_id, body)

    def _admit(self, hub_id: str, endpoint: str) -> bytes | Reply:
        """The body of a request to a known hub's endpoint, or why there is none."""
        service = self.server.service
        if self.command != _HUB_METHODS[endpoint]:
            self._discard_body()
            return service.error(405, "method not allowed", Allow=_HUB_METHODS[endpoint])
        if hub_id not in self.server.hubs:
            self._discard_body()
            return service.error(404, f"unknown hub {hub_id!r}")
        return self._read_body()

    def _rate_limited(self, hub_id: str) -> Reply | None:
        retry = self.server.limiter.retry_after(hub_id)
        if retry is None:
            return None
        return self.server.service.error(429, "rate limit exceeded", **{"Retry-After": str(retry)})

    def _operator(self, hub_id: str, endpoint: str) -> int | None:
        service = self.server.service
        if self.command != _OPERATOR_METHODS[endpoint]:
            self._discard_body()
            return self._send(
                service.error(405, "method not allowed"), Allow=_OPERATOR_METHODS[endpoint]
            )
        body = self._read_body()
        if isinstance(body, Reply):
            return self._send(body)
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        expected = self.server.operator_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            return self._send(
                service.error(
                    401, "operator endpoints need Authorization: Bearer <operator token>"
                ),
                **{"WWW-Authenticate": 'Bearer realm="homeguard-operator"'},
            )
        if hub_id not in self.server.hubs:
            return self._send(service.error(404, f"unknown hub {hub_id!r}"))
        if endpoint == "updates":
            return self._send(service.post_operator_update(hub_id, body))
        return self._send(service.get_operator_incidents(hub_id))

    def _authenticate(self, hub_id: str, body: bytes) -> Reply | None:
        service = self.server.service
        signed = parse_authorization(self.headers.get("Authorization"))
        if signed is None:
            return service.error(401, "missing or malformed HomeGuard-HMAC-SHA256 Authorization")
        secret = self.server.hubs.get(signed.hub_id)
        if secret is None or not verify(signed, secret, self.command, self.path, body):
            return service.error(401, "bad signature")
        if abs(signed.ts - self.server.clock()) > MAX_SKEW_S:
            return service.error(401, f"ts is more than {MAX_SKEW_S} s away from server_time")
        if signed.hub_id != hub_id:
            return service.error(403, "the signing hub is not the hub in the path")
        return None

    def _inject(self, fault: Fault) -> Reply | None:
        """The injected fault's answer; None to reset; _SLOWED to go on after a delay."""
        service = self.server.service
        if fault == "500":
            return service.error(500, "injected fault")
        if fault == "429":
            return service.error(429, "injected fault", **{"Retry-After": "1"})
        if fault == "413":
            return service.error(413, "injected fault")
        if fault == "slow":
            self.server.stopping.wait(_SLOW_S)
            return _SLOWED
        # reset: abort the connection (RST) without a byte of answer.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return None

    def _read_body(self) -> bytes | Reply:
        service = self.server.service
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return service.error(411, "send the body with a Content-Length")
        text = self.headers.get("Content-Length") or "0"
        if not text.isascii() or not text.isdigit():
            self.close_connection = True
            return service.error(400, "bad Content-Length")
        length = int(text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            return service.error(413, f"a request body is at most {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def _discard_body(self) -> None:
        body = self._read_body()
        if isinstance(body, Reply):
            self.close_connection = True

    def _send(self, reply: Reply, **headers: str) -> int:
        payload = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {**reply.headers, **headers}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        return reply.status
