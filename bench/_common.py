"""Shared by every benchmark: topics and payloads, clients with TCP_NODELAY, process control
(the hub, the peer processes of `bench._peers`), readiness, percentiles and tables.

Every benchmark spawns real processes against a real Mosquitto (`tests.broker`) on loopback.
Whatever is spawned is stopped in a `finally` (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import Broker

REPO = Path(__file__).resolve().parent.parent

# -- the protocol the benchmarks speak ---------------------------------------------------------

LEAK_TOPIC = "zigbee2mqtt/Leak 1"
VALVE_TOPIC = "zigbee2mqtt/Valve 1"
VALVE_SET = f"{VALVE_TOPIC}/set"
VALVE_GET = f"{VALVE_TOPIC}/get"
WET = b'{"water_leak": true}'
DRY = b'{"water_leak": false}'
VALVE_CLOSED = b'{"state":"OFF"}'
VALVE_OPEN = b'{"state":"ON"}'
ONLINE = b"online"

NATIVE_FILTER = "homeguard/sensors/+/state"
LOAD_SENSORS = 100
READINGS_PER_MESSAGE = 4


def sensor_topic(i: int, sensors: int = LOAD_SENSORS) -> str:
    """The native state topic of load sensor `s<i mod sensors>`."""
    return f"homeguard/sensors/s{i % sensors}/state"


def reading_payload(i: int) -> bytes:
    """One native message of `READINGS_PER_MESSAGE` plausible readings (varies with `i`)."""
    return json.dumps(
        {
            "temperature": round(18 + (i % 100) / 10, 1),
            "humidity": round(35 + (i % 200) / 10, 1),
            "power": round(100 + (i % 500) / 10, 1),
            "voltage": round(228 + (i % 40) / 10, 1),
        }
    ).encode()


def hub_status_topic(hub_id: str) -> str:
    return f"homeguard/hub/{hub_id}/status"


# -- MQTT clients ------------------------------------------------------------------------------


def set_nodelay(_client: paho.Client, _userdata: object, sock: paho.SocketLike) -> None:
    """paho `on_socket_open`: Nagle off, or every QoS 1 hop stalls on delayed ACKs."""
    if isinstance(sock, socket.socket):  # always, on TCP (an SSLSocket is one too)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def paho_client(name: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}")
    client.on_socket_open = set_nodelay
    return client


def connect(client: paho.Client, broker: Broker, timeout: float = 10.0) -> None:
    """Connect and start paho's network thread; return once the broker accepted us."""
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise RuntimeError(f"no CONNACK from {broker.host}:{broker.port}")


def disconnect(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def subscribe(client: paho.Client, topics: Sequence[str], timeout: float = 10.0) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    done = threading.Event()
    client.on_subscribe = lambda *_args: done.set()
    client.subscribe([(t, 1) for t in topics])
    if not done.wait(timeout):
        raise RuntimeError(f"no SUBACK for {list(topics)}")


@contextlib.contextmanager
def connected_client(name: str, broker: Broker) -> Iterator[paho.Client]:
    client = paho_client(name)
    connect(client, broker)
    try:
        yield client
    finally:
        disconnect(client)


class ValvePeer:
    """`Valve 1` as Zigbee2MQTT would show it, answering at once, timing each `/set` it gets.

    Runs on paho's network thread; `wait_command` is for the benchmark's thread.
    """

    def __init__(self, client: paho.Client) -> None:
        self._client = client
        self._cond = threading.Condition()
        self._state = VALVE_OPEN
        self.commands: list[float] = []  # perf_counter() at each /set received
        self.reads = 0  # /get received (the hub asks when a confirmation is late)
        client.on_message = self._on_message
        subscribe(client, [VALVE_SET, VALVE_GET])

    def _on_message(self, client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if msg.topic == VALVE_SET:
            with self._cond:
                self.commands.append(now)
                self._cond.notify_all()
            self._state = VALVE_CLOSED if msg.payload == VALVE_CLOSED else self._state
            client.publish(VALVE_TOPIC, self._state, qos=1)
        elif msg.topic == VALVE_GET:
            self.reads += 1
            client.publish(VALVE_TOPIC, self._state, qos=1)

    def command_count(self) -> int:
        with self._cond:
            return len(self.commands)

    def wait_command(self, index: int, timeout: float) -> float | None:
        """perf_counter() of the `index`-th command (0-based), or None if none came in time."""
        with self._cond:
            if self._cond.wait_for(lambda: len(self.commands) > index, timeout):
                return self.commands[index]
        return None

    def report_open(self) -> None:
        """Somebody opened the valve again by hand (the hub never opens one)."""
        self._state = VALVE_OPEN
        self._client.publish(VALVE_TOPIC, VALVE_OPEN, qos=1)


@contextlib.contextmanager
def valve_peer(broker: Broker) -> Iterator[ValvePeer]:
    with connected_client("bench-valve", broker) as client:
        yield ValvePeer(client)


class ReadyWatcher:
    """Waits for `online` on a topic (retained or live): how a process says it is ready."""

    def __init__(self, client: paho.Client, topic: str) -> None:
        self._seen = threading.Event()
        self.at = math.nan
        client.on_message = self._on_message
        subscribe(client, [topic])

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        if msg.payload == ONLINE and not self._seen.is_set():
            self.at = time.perf_counter()
            self._seen.set()

    def wait(self, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not self._seen.wait(0.05):
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args!r} not ready after {timeout:.0f}s:\n{tail(log)}")
        return self.at


# -- processes ---------------------------------------------------------------------------------


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def spawn(argv: list[str], log: Path, *, capture_stdout: bool = False) -> subprocess.Popen[bytes]:
    """Start from the repository root; stderr (and stdout unless captured) to `log`, never a pipe
    nobody reads (a chatty process would block on a full one)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with log.open("ab") as out:
        stdout: int | IO[bytes] = subprocess.PIPE if capture_stdout else out
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=stdout, stderr=out)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> bytes:
    """SIGTERM, wait, SIGKILL; returns what it wrote on a captured stdout."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or b""


def start_until_ready(
    argv: list[str],
    broker: Broker,
    ready_topic: str,
    log: Path,
    *,
    capture_stdout: bool = False,
    timeout: float = 20.0,
) -> tuple[subprocess.Popen[bytes], float]:
    """Spawn and wait for `online` on `ready_topic`; returns the process and spawn→ready seconds."""
    with connected_client("bench-ready", broker) as client:
        watcher = ReadyWatcher(client, ready_topic)
        started = time.perf_counter()
        proc = spawn(argv, log, capture_stdout=capture_stdout)
        try:
            ready_at = watcher.wait(proc, log, timeout)
        except BaseException:
            stop(proc)
            raise
    return proc, ready_at - started


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def proc_status_bytes(pid: int, key: str) -> int:
    """A memory figure of /proc/<pid>/status in bytes (`VmHWM`, `RssAnon`, `RssFile`, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size the kernel recorded for the process (VmHWM)."""
    return proc_status_bytes(pid, "VmHWM")


# -- the hub -----------------------------------------------------------------------------------

#: Every benchmark hub: its own id and data dir, quiet logs, the test broker.
HUB_CONFIG_HEAD = """\
[hub]
id = "{hub_id}"
data_dir = "{data_dir}"
log_level = "WARNING"
[mqtt]
host = "{host}"
port = {port}
"""
HUB_CONFIG = (
    HUB_CONFIG_HEAD
    + """\
[leak]
confirm_timeout_s = 5
[[devices]]
id = "leak-1"
adapter = "zigbee2mqtt"
name = "Leak 1"
[[devices]]
id = "valve-1"
adapter = "zigbee2mqtt"
name = "Valve 1"
role = "water_valve"
"""
)

#: Log lines the benchmarks cause on purpose (each leak is logged as a WARNING by design).
EXPECTED_LOG = ("water leak at Leak 1: closing 1 valve(s)",)


#: The hub without its anomaly models: the trunk (rules, store, MQTT) that issue 2's memory
#: target is about; the models' own budget is measured as the difference.
RULES_ONLY = "[anomaly]\nenabled = false\n"


def write_config(
    path: Path,
    broker: Broker,
    hub_id: str,
    data_dir: Path,
    load_sensors: int,
    extra: str = "",
) -> None:
    devices = "".join(
        f'[[devices]]\nid = "s{i}"\nadapter = "native"\n' for i in range(load_sensors)
    )
    path.write_text(
        HUB_CONFIG.format(hub_id=hub_id, data_dir=data_dir, host=broker.host, port=broker.port)
        + devices
        + extra
    )


@dataclass
class HubProcess:
    proc: subprocess.Popen[bytes]
    hub_id: str
    config: Path
    log: Path
    ready_s: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict[str, Any]:
        """`homeguard-hub status --json` (the health row is refreshed every 5 s and at stop)."""
        done = subprocess.run(
            python_module("hub", "-c", str(self.config), "status", "--json"),
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=30,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def log_problems(self) -> list[str]:
        """Log lines other than the ones the benchmark causes on purpose."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [ln for ln in lines if ln.strip() and not any(e in ln for e in EXPECTED_LOG)]


@contextlib.contextmanager
def running_hub(
    broker: Broker,
    workdir: Path,
    *,
    load_sensors: int = LOAD_SENSORS,
    extra: str = "",
    devices_toml: str | None = None,
    timeout: float = 20.0,
) -> Iterator[HubProcess]:
    """A hub with a fresh data dir and id, ready (retained `online` seen) on entry, stopped with
    SIGTERM on exit (it writes its final health row then, so `status()` works afterwards).

    Its configuration is `HUB_CONFIG` with `load_sensors` native sensors and `extra`, or, given
    `devices_toml`, exactly those `[[devices]]` tables under `HUB_CONFIG_HEAD`."""
    hub_id = f"bench-hub-{uuid.uuid4().hex[:8]}"
    home = workdir / hub_id
    home.mkdir(parents=True)
    config = home / "hub.toml"
    if devices_toml is None:
        write_config(config, broker, hub_id, home / "data", load_sensors, extra)
    else:
        head = HUB_CONFIG_HEAD.format(
            hub_id=hub_id, data_dir=home / "data", host=broker.host, port=broker.port
        )
        config.write_text(head + devices_toml)
    log = home / "hub.log"
    argv = python_module("hub", "-c", str(config), "run")
    topic = hub_status_topic(hub_id)
    proc, ready_s = start_until_ready(argv, broker, topic, log, timeout=timeout)
    try:
        yield HubProcess(proc, hub_id, config, log, ready_s)
    finally:
        stop(proc)


# -- peer processes (bench._peers) -------------------------------------------------------------


@dataclass
class Peer:
    proc: subprocess.Popen[bytes]
    ready_s: float
    log: Path
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def running_peer(kind: str, broker: Broker, workdir: Path, *args: str) -> Iterator[Peer]:
    """One of `bench._peers`' processes, ready on entry; on exit it is stopped and its final
    JSON line (counts, rates) is in `Peer.stats`."""
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    ready_topic = f"bench/ready/{name}"
    log = workdir / f"{name}.log"
    argv = python_module(
        "bench._peers",
        kind,
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--ready-topic",
        ready_topic,
        *args,
    )
    proc, ready_s = start_until_ready(argv, broker, ready_topic, log, capture_stdout=True)
    peer = Peer(proc, ready_s, log)
    try:
        yield peer
    finally:
        out = stop(proc).decode(errors="replace").strip().splitlines()
        try:
            peer.stats = json.loads(out[-1])
        except (IndexError, ValueError):
            print(f"warning: {name} exited {proc.returncode} with no stats:\n{tail(log)}")


# -- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p100 is the maximum); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def mib(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table (first column left, the rest right)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])
