"""The client's transport rules: the secret file, https only (http to loopback), certificate
verification with an optional CA file."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hub.clock import SystemClock
from sync.client import CloudError, DispatchClient, SecretError, Transport, read_secret
from tests.broker import make_certificates
from tests.sync_support import new_secret, write_secret


def test_the_secret_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "s", new_secret())
    assert len(read_secret(path)) == 64
    path.chmod(0o644)
    with pytest.raises(SecretError, match="readable by everyone"):
        read_secret(path)
    short = write_secret(tmp_path / "short", b"x" * 16)
    with pytest.raises(SecretError, match="at least 32"):
        read_secret(short)
    with pytest.raises(SecretError, match="cannot read"):
        read_secret(tmp_path / "missing")


@pytest.mark.parametrize(
    "url", ["http://dispatch.example", "http://10.0.0.1:8080", "ftp://127.0.0.1"]
)
def test_plain_http_is_refused_unless_loopback(url: str) -> None:
    with pytest.raises(CloudError, match="https only"):
        DispatchClient(base_url=url, hub_id="hub-1", secret=new_secret(), clock=SystemClock())


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"server_time": "2026-11-26T00:00:00.000Z"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _tls_server(certs: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


# A refused handshake leaves the server's half-open TLS socket to the garbage collector.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_tls_is_verified_against_the_configured_ca(tmp_path: Path) -> None:
    make_certificates(tmp_path)
    with _tls_server(tmp_path) as url:
        async with DispatchClient(
            base_url=url,
            hub_id="hub-1",
            secret=new_secret(),
            clock=SystemClock(),
            ca_file=tmp_path / "ca.pem",
            timeout_s=5,
        ) as client:
            assert await client.heartbeat({}) == {"server_time": "2026-11-26T00:00:00.000Z"}
        async with DispatchClient(
            base_url=url, hub_id="hub-1", secret=new_secret(), clock=SystemClock(), timeout_s=5
        ) as client:
            with pytest.raises(Transport, match="CERTIFICATE_VERIFY_FAILED"):
                await client.heartbeat({})
