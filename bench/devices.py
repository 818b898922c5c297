"""Devices: the hub's memory with N configured devices across adapters, each reporting ~once a second.

    python -m bench.devices [--devices 500] [--warmup 8] [--window 15]

Three hubs are run one after the other against one Mosquitto: the baseline with no `[[devices]]`
at all; one with only the MQTT devices of the plan; one with all `--devices`, spread across the
adapters (native, zigbee2mqtt, shelly, tasmota, rtl_433, home_assistant, plus a few modbus / dsmr
/ json_lines meters on serial ports that do not exist, under a temporary directory, and a few
bthome / xiaomi devices: with no BlueZ here the hub says BLE is unavailable and runs on). The
middle run separates the cost per MQTT device from the one-off cost of starting the serial and BLE
drivers. Before the second hub starts, a retained Home Assistant discovery config is published
for each home_assistant device (`uniq_id` = its configured `name`).

Once a hub is ready (retained `online`), a load thread in this process publishes one captured
payload per MQTT device per `--period` seconds (QoS 0, spread evenly over the period; rtl_433
temperatures vary, so its duplicate filter keeps them all). After `--warmup` seconds RSS is sampled
with psutil every 0.25 s for `--window` seconds ("steady" = the median sample); VmHWM (the kernel's
peak, start-up included) is read at the end. The baseline hub gets no load: it has no device to
hear from. The difference, and the difference per configured device, is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs installed here

from bench._common import (
    connected_client,
    median,
    mib,
    reading_payload,
    running_hub,
    vm_hwm_bytes,
)
from bench.decoder_cases import AQARA_CLIMATE, SHELLY_SWITCH_STATUS, TASMOTA_POW
from tests.broker import Broker, running_broker

#: Share of the devices per adapter; native gets the rest. At 500: 100 native, 100 zigbee2mqtt,
#: 80 shelly, 80 tasmota, 60 rtl_433, 60 home_assistant, 8 modbus, 2 dsmr, 2 json_lines,
#: 4 bthome, 4 xiaomi.
SHARES: tuple[tuple[str, float], ...] = (
    ("zigbee2mqtt", 0.20),
    ("shelly", 0.16),
    ("tasmota", 0.16),
    ("rtl_433", 0.12),
    ("home_assistant", 0.12),
    ("modbus", 0.016),
    ("dsmr", 0.004),
    ("json_lines", 0.004),
    ("bthome", 0.008),
    ("xiaomi", 0.008),
)
METERS_PER_BUS = 4
RTL433_TOPIC = "rtl_433/bench-radio/events"
MQTT_ADAPTERS = frozenset(
    {"native", "zigbee2mqtt", "shelly", "tasmota", "rtl_433", "home_assistant"}
)


@dataclass(frozen=True)
class Options:
    devices: int = 500
    warmup_s: float = 8.0
    window_s: float = 15.0
    period_s: float = 1.0
    sample_s: float = 0.25


@dataclass
class Plan:
    """The `[[devices]]` tables, the retained discovery configs, and one message per MQTT device
    (its payload a function of the send count, so values move)."""

    toml: str = ""
    mqtt_toml: str = ""  # the MQTT adapters' devices only (no serial, no BLE)
    counts: dict[str, int] = field(default_factory=dict)
    retained: list[tuple[str, bytes]] = field(default_factory=list)
    messages: list[tuple[str, Any]] = field(default_factory=list)


def counts_for(n: int) -> dict[str, int]:
    counts = {adapter: round(n * share) for adapter, share in SHARES}
    while sum(counts.values()) > n:  # small n: take from the largest share first
        largest = max(counts, key=lambda a: counts[a])
        counts[largest] -= 1
    return {"native": n - sum(counts.values()), **counts}


def _rtl_payload(device_id: int) -> Any:
    def payload(k: int) -> bytes:
        return (
            f'{{"time" : "{int(time.time())}", "protocol" : 40, "model" : "Acurite-Tower", '
            f'"id" : {device_id}, "channel" : "A", "battery_ok" : 1, '
            f'"temperature_C" : {15 + (k % 100) / 10:.3f}, "humidity" : {40 + k % 30}, '
            f'"mic" : "CHECKSUM", "mod" : "ASK", "freq" : 433.932, "rssi" : -0.101}}'
        ).encode()

    return payload


def plan(n: int, port_dir: Path) -> Plan:
    p = Plan(counts=counts_for(n))
    tables: list[str] = []

    def device(**keys: object) -> None:
        body = "".join(
            f"{k} = {v}\n" if isinstance(v, int) else f'{k} = "{v}"\n' for k, v in keys.items()
        )
        tables.append("[[devices]]\n" + body)

    for i in range(p.counts["native"]):
        device(id=f"n{i}", adapter="native")
        p.messages.append((f"homeguard/sensors/n{i}/state", lambda k, i=i: reading_payload(i + k)))
    for i in range(p.counts["zigbee2mqtt"]):
        device(id=f"z{i}", adapter="zigbee2mqtt", name=f"Climate {i}")
        p.messages.append((f"zigbee2mqtt/Climate {i}", lambda _k: AQARA_CLIMATE))
    for i in range(p.counts["shelly"]):
        name = f"shellyplus1pm-bench{i:06x}"
        device(id=f"sh{i}", adapter="shelly", name=name)
        p.messages.append((f"{name}/status/switch:0", lambda _k: SHELLY_SWITCH_STATUS))
    for i in range(p.counts["tasmota"]):
        name = f"tasmota_B{i:05X}"
        device(id=f"t{i}", adapter="tasmota", name=name)
        p.messages.append((f"tele/{name}/SENSOR", lambda _k: TASMOTA_POW))
    for i in range(p.counts["rtl_433"]):
        device(id=f"r{i}", adapter="rtl_433", model="Acurite-Tower", device_id=20000 + i)
        p.messages.append((RTL433_TOPIC, _rtl_payload(20000 + i)))
    for i in range(p.counts["home_assistant"]):
        unique = f"bench-ha-{i}"
        state = f"bench{i}/sensor/temperature/state"
        device(id=f"ha{i}", adapter="home_assistant", name=unique)
        config = (
            f'{{"dev_cla":"temperature","unit_of_meas":"\\u00b0C","stat_cla":"measurement",'
            f'"name":"Bench {i} Temperature","stat_t":"{state}","uniq_id":"{unique}"}}'
        )
        p.retained.append((f"homeassistant/sensor/bench{i}/temperature/config", config.encode()))
        p.messages.append((state, lambda k: f"{18 + (k % 50) / 10:.1f}".encode()))
    p.mqtt_toml = "".join(tables)
    for i in range(p.counts["modbus"]):
        bus = port_dir / f"ttyRS485-{i // METERS_PER_BUS}"
        device(id=f"m{i}", adapter="modbus", model="SDM120", port=bus, unit=i % METERS_PER_BUS + 1)
    for i in range(p.counts["dsmr"]):
        device(id=f"p{i}", adapter="dsmr", port=port_dir / f"ttyP1-{i}")
    for i in range(p.counts["json_lines"]):
        device(id=f"j{i}", adapter="json_lines", port=port_dir / f"ttyJSON-{i}")
    for i in range(p.counts["bthome"]):
        device(id=f"b{i}", adapter="bthome", address=f"A4:C1:38:00:{i // 256:02X}:{i % 256:02X}")
    for i in range(p.counts["xiaomi"]):
        device(id=f"x{i}", adapter="xiaomi", address=f"A4:C1:39:00:{i // 256:02X}:{i % 256:02X}")
    p.toml = "".join(tables)
    return p


class Load:
    """A paho client on a thread: every message of the plan once per period, evenly spread."""

    def __init__(self, broker: Broker, messages: list[tuple[str, Any]], period_s: float) -> None:
        self._broker = broker
        self._messages = messages
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-devices-load", daemon=True)
        self.sent = 0
        self.seconds = 0.0

    def __enter__(self) -> Load:
        if self._messages:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        gap = self._period / len(self._messages)
        with connected_client("bench-devices-load", self._broker) as client:
            started = next_at = time.perf_counter()
            k = 0
            while not self._stop.is_set():
                for topic, payload in self._messages:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -1.0:  # far behind (a busy machine): do not burst to catch up
                        next_at = time.perf_counter()
                    client.publish(topic, payload(k), qos=0)
                    self.sent += 1
                    next_at += gap
                    if self._stop.is_set():
                        break
                k += 1
            self.seconds = time.perf_counter() - started


@dataclass
class Memory:
    label: str
    devices: int
    vm_hwm: int = 0
    steady_rss: float = 0.0
    rss_first_last: tuple[int, int] = (0, 0)
    ready_s: float = 0.0
    sent: int = 0
    load_rate: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def sample_rss(pid: int, window_s: float, every_s: float) -> list[int]:
    proc = psutil.Process(pid)
    rss: list[int] = []
    end = time.perf_counter() + window_s
    while time.perf_counter() < end:
        rss.append(proc.memory_info().rss)
        time.sleep(every_s)
    return rss


def measure(
    label: str, broker: Broker, workdir: Path, p: Plan, opts: Options, *, mqtt_only: bool = False
) -> Memory:
    n = sum(v for a, v in p.counts.items() if not mqtt_only or a in MQTT_ADAPTERS)
    memory = Memory(label, n)
    toml = p.mqtt_toml if mqtt_only else p.toml
    with running_hub(broker, workdir, devices_toml=toml, timeout=60.0) as hub:
        memory.ready_s = hub.ready_s
        with Load(broker, p.messages, opts.period_s) as load:
            time.sleep(opts.warmup_s)
            rss = sample_rss(hub.pid, opts.window_s, opts.sample_s)
            memory.vm_hwm = vm_hwm_bytes(hub.pid)
        memory.sent = load.sent
        memory.load_rate = load.sent / load.seconds if load.seconds else 0.0
    memory.steady_rss = median(rss)
    memory.rss_first_last = (rss[0], rss[-1])
    status = hub.status()
    problems = hub.log_problems()
    memory.notes.update(
        received=status["mqtt"]["messages"],
        readings_written=status["store"]["readings_written"],
        bad_input=status["bad_input"],
        log_lines=len(problems),
    )
    print(
        f"  {label}: {n} devices, ready in {memory.ready_s:.2f} s, steady RSS "
        f"{mib(memory.steady_rss):.1f} MiB ({mib(rss[0]):.1f} → {mib(rss[-1]):.1f}), VmHWM "
        f"{mib(memory.vm_hwm):.1f} MiB, load {memory.load_rate:.0f} msg/s, {memory.notes}",
        flush=True,
    )
    for line in problems[:8]:
        print(f"    log: {line[:200]}")
    return memory


def publish_retained(broker: Broker, retained: list[tuple[str, bytes]]) -> None:
    if not retained:
        return
    with connected_client("bench-devices-discovery", broker) as client:
        infos = [client.publish(t, payload, qos=1, retain=True) for t, payload in retained]
        for info in infos:
            info.wait_for_publish(10)


def run(opts: Options) -> tuple[Memory, Memory]:
    print(
        f"devices: baseline (0 devices, no load) then {opts.devices} devices, each MQTT device "
        f"sending one message per {opts.period_s:g} s; {opts.window_s:.0f} s window after "
        f"{opts.warmup_s:.0f} s",
        flush=True,
    )
    with running_broker() as broker, tempfile.TemporaryDirectory(prefix="hg-bench-dev-") as tmp:
        workdir = Path(tmp)
        port_dir = workdir / "no-such-ports"  # never created: every serial port is missing
        configured = plan(opts.devices, port_dir)
        print(f"  spread: {configured.counts}", flush=True)
        base = measure("baseline", broker, workdir, Plan(counts={}), opts)
        publish_retained(broker, configured.retained)
        mqtt = measure("MQTT devices only", broker, workdir, configured, opts, mqtt_only=True)
        loaded = measure(f"all {opts.devices} devices", broker, workdir, configured, opts)
    report(base, mqtt, loaded)
    return base, loaded


def report(base: Memory, mqtt: Memory, loaded: Memory) -> None:
    n, m = loaded.devices, mqtt.devices

    def row(name: str, b: float, q: float, d: float) -> str:
        return (
            f"| {name} | {mib(b):.1f} | {mib(q):.1f} | {mib(d):.1f} | {mib(d - b):+.1f} MiB, "
            f"{(d - b) / n / 1024:.1f} KiB | {mib(q - b):+.1f} MiB, {(q - b) / m / 1024:.1f} KiB | "
            f"{mib(d - q):+.1f} MiB |"
        )

    print(f"\n### Hub memory with {n} configured devices (MiB)\n")
    print(
        f"| | 0 devices (baseline) | {m} MQTT devices | all {n} devices | all - baseline, "
        f"per device | MQTT - baseline, per MQTT device | serial + BLE ({n - m} devices) |"
    )
    print("|---|---|---|---|---|---|---|")
    print(row("VmHWM (peak, start-up included)", base.vm_hwm, mqtt.vm_hwm, loaded.vm_hwm))
    print(row("steady RSS (median)", base.steady_rss, mqtt.steady_rss, loaded.steady_rss))
    print(
        f"| start-up to ready, s | {base.ready_s:.2f} | {mqtt.ready_s:.2f} | {loaded.ready_s:.2f} "
        f"| {loaded.ready_s - base.ready_s:+.2f} | {mqtt.ready_s - base.ready_s:+.2f} | "
        f"{loaded.ready_s - mqtt.ready_s:+.2f} |"
    )
    print(
        f"\nLoad on the {n}-device hub: {loaded.load_rate:.0f} messages/s "
        f"({loaded.sent} sent, {loaded.notes.get('received')} received by the hub, "
        f"{loaded.notes.get('readings_written')} readings written)."
    )


def main(argv: list[str] | None = None) -> None:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench.devices",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--devices", type=int, default=d.devices)
    p.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds under load first")
    p.add_argument("--window", type=float, default=d.window_s, help="RSS sampling, seconds")
    p.add_argument("--period", type=float, default=d.period_s, help="seconds between a device's")
    a = p.parse_args(argv)
    started = time.monotonic()
    run(Options(devices=a.devices, warmup_s=a.warmup, window_s=a.window, period_s=a.period))
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
