"""A real Mosquitto on a free loopback port, for tests and benches."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
persistence {persistence}
persistence_location {dir}/
log_dest stderr
log_type error
log_type warning
"""

TLS_LISTENER = """\
listener {port} 127.0.0.1
cafile {dir}/ca.pem
certfile {dir}/server.pem
keyfile {dir}/server.key
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    tls_port: int | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, dir=self.workdir, persistence="true")
        if self.tls_port is not None:
            text += TLS_LISTENER.format(port=self.tls_port, dir=self.workdir)
        conf.write_text(text)
        self.process = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.02)  # polling a port that has no event to wait on
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                self.process.wait(10)
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def make_certificates(directory: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl, as an installer would)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    d = str(directory)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        f"{d}/ca.key",
        "-out",
        f"{d}/ca.pem",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        f"{d}/server.key",
        "-out",
        f"{d}/server.csr",
    )
    (directory / "ext.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{d}/server.csr",
        "-CA",
        f"{d}/ca.pem",
        "-CAkey",
        f"{d}/ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{d}/ext.cnf",
        "-out",
        f"{d}/server.pem",
    )
    (directory / "server.key").chmod(0o644)  # a throwaway key the broker's user must read


@contextlib.contextmanager
def running_broker(*, tls: bool = False) -> Iterator[Broker]:
    with tempfile.TemporaryDirectory(prefix="hg-mosquitto-") as d:
        # Run as root, Mosquitto drops to the `mosquitto` user: it must be able to read this dir.
        Path(d).chmod(0o755)
        broker = Broker("127.0.0.1", free_port(), Path(d))
        if tls:
            make_certificates(Path(d))
            broker.tls_port = free_port()
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
