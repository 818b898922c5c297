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

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(MOSQUITTO_CONF.format(port=self.port, dir=self.workdir, persistence="true"))
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


@contextlib.contextmanager
def running_broker() -> Iterator[Broker]:
    with tempfile.TemporaryDirectory(prefix="hg-mosquitto-") as d:
        broker = Broker("127.0.0.1", free_port(), Path(d))
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
