"""`homeguard-hub`: run the hub, check its configuration, and look at what it knows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hub import __version__, cli_incidents, cli_maintenance, cli_models, cli_replay
from hub.cli_common import EXIT_CONFIG, existing_database
from hub.cli_output import ago, emit_json, table
from hub.clock import duration
from hub.config import SECRET_KEYS, WATER_CALIBRATION_FILE, Config, config_path, load_config
from hub.errors import ConfigError, StoreError
from hub.logsetup import setup_logging
from hub.store import hubstate
from hub.store import incidents as incident_repo
from hub.store import readings as readings_repo
from hub.store.db import DB_NAME


def main(argv: list[str] | None = None) -> int:
    # What the hub and its commands create (the database and its WAL, kept files, markers) is
    # never world-readable, whatever umask the shell or a non-systemd start gave.
    os.umask(os.umask(0o027) | 0o027)
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config if args.config is not None else config_path())
    except ConfigError as err:
        print(f"configuration error:\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    handler: Callable[[argparse.Namespace, Config], int] = args.handler
    try:
        return handler(args, config)
    except StoreError as err:
        print(f"database error in {config.hub.data_dir}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homeguard-hub", description=__doc__)
    p.add_argument("--version", action="version", version=f"homeguard-hub {__version__}")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="TOML file (default: $HOMEGUARD_CONFIG, "
        "else /etc/homeguard/hub.toml if present, else built-in defaults)",
    )
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the hub")
    run.add_argument(
        "--simulate",
        nargs="?",
        const="leak",
        metavar="SCENARIO",
        choices=["normal", "leak", "stuck-valve"],
        help="also run simulated devices (scenario: normal, leak [default], stuck-valve)",
    )
    run.add_argument(
        "--leak-after",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds before the simulated leak (default 20)",
    )
    run.add_argument("--live", action="store_true", help="print readings and actions as they come")
    run.add_argument(
        "--ble-replay",
        type=Path,
        metavar="FILE",
        help="take BLE advertisements from this recording instead of the Bluetooth adapter",
    )
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_check_config)

    schema = sub.add_parser("config-schema", help="print the configuration's JSON Schema")
    schema.set_defaults(handler=lambda _a, _c: _print_schema())

    status = sub.add_parser("status", help="is the hub running, connected and healthy")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    sensors = sub.add_parser("sensors", help="known devices, last reading and last seen")
    sensors.add_argument("--json", action="store_true")
    sensors.set_defaults(handler=_sensors)

    inc = sub.add_parser("incidents", help="list, show, acknowledge or resolve incidents")
    inc_sub = inc.add_subparsers(required=True, metavar="ACTION")
    lst = inc_sub.add_parser("list", help="open incidents (--all for every one)")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cli_incidents.incidents_list)
    for name, helptext in (
        ("show", "one incident in full"),
        ("ack", "acknowledge"),
        ("resolve", "mark resolved"),
    ):
        one = inc_sub.add_parser(name, help=helptext)
        one.add_argument("id", help="incident id (or a unique prefix of 4+ characters)")
        one.add_argument("--json", action="store_true")
        one.set_defaults(handler=cli_incidents.incident_one, action=name)

    sync = sub.add_parser("sync", help="cloud sync: status, or send what is waiting now")
    sync_sub = sync.add_subparsers(required=True, metavar="ACTION")
    sync_status = sync_sub.add_parser(
        "status", help="link, outbox by kind, oldest pending, dead letters, last error"
    )
    sync_status.add_argument("--json", action="store_true")
    sync_status.set_defaults(handler=_sync_status)
    sync_flush = sync_sub.add_parser(
        "flush",
        help="ask the running hub to send its outbox now (or send it from here if it is not running)",
    )
    sync_flush.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds"
    )
    sync_flush.set_defaults(handler=_sync_flush)

    cli_models.add_parser(sub, _models)
    cli_maintenance.add_parser(sub)
    cli_replay.add_parser(sub)

    sim = sub.add_parser("simulate", help="run simulated devices against the configured broker")
    sim.add_argument("--scenario", default="leak", choices=["normal", "leak", "stuck-valve"])
    sim.add_argument("--leak-after", type=float, default=20.0, metavar="S")
    sim.set_defaults(handler=_simulate)
    return p


# -- run --------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, config: Config) -> int:
    from drivers.simulator import Scenario
    from hub import daemon

    setup_logging(config.hub.log_level)
    options = daemon.Options(
        simulate=Scenario(args.simulate) if args.simulate else None,
        leak_after_s=args.leak_after,
        live=args.live,
        ble_replay=args.ble_replay,
    )
    _event_loop_run(daemon.run(config, options))
    return 0


def _event_loop_run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (less CPU per message on the hub), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with contextlib.suppress(asyncio.CancelledError):
        uvloop.run(coro)


def _simulate(args: argparse.Namespace, config: Config) -> int:
    from drivers.simulator import Scenario, run_simulator

    setup_logging(config.hub.log_level)
    _event_loop_run(
        run_simulator(
            host=config.mqtt.broker_host,
            port=config.mqtt.port,
            scenario=Scenario(args.scenario),
            base_topic=config.zigbee2mqtt.base_topic,
            leak_after_s=args.leak_after,
        )
    )
    return 0


# -- configuration ----------------------------------------------------------------------------


def _without_secrets(data: Any) -> Any:
    """`data` with the values of secret keys (`SECRET_KEYS`) replaced by "(set)"."""
    if isinstance(data, dict):
        return {
            k: "(set)" if k in SECRET_KEYS and v is not None else _without_secrets(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_without_secrets(v) for v in data]
    return data


def _check_config(args: argparse.Namespace, config: Config) -> int:
    source = args.config or config_path()
    if args.json:
        emit_json(
            {
                "ok": True,
                "file": str(source) if source else None,
                "config": _without_secrets(json.loads(config.model_dump_json())),
            }
        )
        return 0
    print(f"OK: {source or 'built-in defaults (no file)'}")
    print(f"  hub {config.hub.id}, data in {config.hub.data_dir}")
    broker = (
        f"{config.mqtt.host}:{config.mqtt.port}{' (TLS)' if config.mqtt.tls else ''}"
        if config.mqtt.host is not None
        else f"this machine's on port {config.mqtt.port}, else one announced on the LAN"
    )
    print(f"  broker {broker}")
    print(f"  cloud: {config.cloud.url if config.cloud else 'none (offline only)'}")
    roles = [f"{d.id} ({d.role})" for d in config.devices if d.role]
    print(f"  {len(config.devices)} devices; actuators: {', '.join(roles) or 'none'}")
    return 0


def _print_schema() -> int:
    emit_json(Config.model_json_schema())
    return 0


# -- what the hub knows -----------------------------------------------------------------------


def _is_running(state: dict[str, Any], now: float) -> bool:
    beat = state.get("heartbeat_at")
    return (
        beat is not None
        and state.get("stopped_at") is None
        and now - beat < 3 * state.get("heartbeat_interval_s", 5)
    )


def _status(args: argparse.Namespace, config: Config) -> int:
    db = existing_database(config)
    state = hubstate.read(db)
    now = time.time()
    beat = state.get("heartbeat_at")
    running = _is_running(state, now)
    open_incidents = incident_repo.list_incidents(db, open_only=True)
    report = {
        "running": running,
        "hub_id": config.hub.id,
        "data_dir": str(config.hub.data_dir),
        "last_heartbeat": beat,
        "open_incidents": len(open_incidents),
        "outbox_depth": incident_repo.outbox_depth(db),
        "database_bytes": (config.hub.data_dir / DB_NAME).stat().st_size,
        **{k: v for k, v in state.items() if k not in {"heartbeat_at", "hub_id"}},
    }
    if args.json:
        emit_json(report)
        return 0
    mqtt = state.get("mqtt", {})
    print(
        f"hub {config.hub.id}: {'running' if running else 'NOT RUNNING'} "
        f"(last heartbeat {ago(beat, now)}, version {state.get('version', '?')})"
    )
    print(
        f"  broker {mqtt.get('broker', '?')}: "
        f"{'connected' if mqtt.get('connected') else 'DISCONNECTED'}, "
        f"{mqtt.get('messages', 0)} messages since start"
    )
    print(
        f"  open incidents: {len(open_incidents)}; outbox (waiting for cloud sync): "
        f"{report['outbox_depth']}; cloud: {_cloud_word(state.get('cloud', '?'))}"
    )
    store = state.get("store", {})
    for key in ("incident_last_error", "recorder_last_error"):
        if store.get(key):
            print(f"  STORE PROBLEM: {store[key]}")
    _print_service_faults(state)
    anomaly = state.get("anomaly")
    if isinstance(anomaly, dict):
        problem = anomaly.get("problem")
        restored = anomaly.get("restored")
        print(
            f"  anomaly detection: {'REFUSED MODEL: ' + str(problem) if problem else 'on'}, "
            f"{anomaly.get('streams', 0)} streams"
            + (f" ({restored} read back at start)" if restored else "")
            + f", {anomaly.get('scored', 0)} readings scored"
        )
        if anomaly.get("state_note"):
            print(f"  anomaly state: {anomaly['state_note']}")
        water = anomaly.get("water_system")
        if isinstance(water, dict):
            print(f"  water system model: {_water_calibration(water)}")
    bad = state.get("bad_input", {})
    print(
        f"  refused input: {sum(bad.values())}" + "".join(f"\n    {k}: {v}" for k, v in bad.items())
    )
    return 0


def _water_calibration(water: dict[str, Any]) -> str:
    if water.get("calibrated"):
        text = "calibrated" + (" (kept from an earlier run)" if water.get("restored") else "")
    else:
        rows, rows_needed = water.get("rows", 0), water.get("rows_needed", "?")
        seconds, needed = water.get("seconds"), water.get("seconds_needed")
        if isinstance(seconds, int | float) and isinstance(needed, int | float) and needed > 0:
            text = (
                f"calibrating, {duration(seconds)} of {duration(needed)}, "
                f"{rows} rows (at least {rows_needed})"
            )
        else:
            text = f"calibrating, {rows} of {rows_needed} rows"
        if water.get("restored"):
            text += " (resumed after a restart)"
    note = water.get("note")
    return f"{text}; {note}" if note else text


def _print_service_faults(state: dict[str, Any]) -> None:
    """The contained services an unexpected error stopped (now, or since the hub started)."""
    stopped = state.get("stopped_services") or {}
    failures = state.get("service_failures") or {}
    for name, error in stopped.items():
        info = failures.get(name) or {}
        if info.get("restarts"):
            then = "and starts it again shortly"
        else:
            then = "until it restarts (`sudo systemctl restart homeguard-hub`)"
        print(
            f"  STOPPED: {name} ({error}); the hub runs on without it {then}; the log has the traceback"
        )
    for name, info in failures.items():
        if name not in stopped and isinstance(info, dict):
            count = info.get("failures", 0)
            print(
                f"  RESTARTED: {name}, after {count} unexpected error{'s' if count != 1 else ''} "
                f"(the last: {info.get('last_error')}); the log has the tracebacks"
            )


def _cloud_word(cloud: object) -> str:
    if isinstance(cloud, dict):
        return str(cloud.get("state", "?")) + " (see `homeguard-hub sync status`)"
    return str(cloud)


def _sensors(args: argparse.Namespace, config: Config) -> int:
    devices = readings_repo.device_table(existing_database(config))
    if args.json:
        emit_json(devices)
        return 0
    now = time.time()
    rows = []
    for d in devices:
        values = " ".join(f"{m}={_short(v['value'])}" for m, v in sorted(d["readings"].items()))
        rows.append(
            (
                d["id"],
                d["adapter"],
                d["role"] or "",
                d["location"] or "",
                "?" if d["expected_interval_s"] is None else duration(d["expected_interval_s"]),
                ago(d["last_seen"], now),
                _state(d),
                values,
            )
        )
    print(
        table(
            (
                "DEVICE",
                "ADAPTER",
                "ROLE",
                "LOCATION",
                "EVERY",
                "LAST SEEN",
                "STATE",
                "LAST READING",
            ),
            rows,
        )
    )
    return 0


def _state(device: dict[str, Any]) -> str:
    """Liveness's verdict, in capitals when it is a problem; else what the device said."""
    health: str | None = device["health"]
    if health in ("silent", "offline", "bridge_down"):
        return health.upper()
    if health is not None:
        return health
    online: bool | None = device["online"]
    return {True: "online", False: "OFFLINE", None: ""}[online]


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# -- cloud sync ---------------------------------------------------------------------------------


def _sync_status(args: argparse.Namespace, config: Config) -> int:
    from hub.cli_sync import sync_status

    return sync_status(config, existing_database(config), as_json=args.json, running=_is_running)


def _sync_flush(args: argparse.Namespace, config: Config) -> int:
    from hub.cli_sync import sync_flush
    from sync.flush import flush_once

    setup_logging("WARNING")
    return sync_flush(
        config,
        existing_database(config),
        timeout_s=args.timeout,
        running=_is_running,
        flush_once=lambda c, t: asyncio.run(flush_once(c, t)),
    )


# -- anomaly models ---------------------------------------------------------------------------


def _models(args: argparse.Namespace, config: Config) -> int:
    if args.models_action == "recalibrate":
        return cli_models.recalibrate(config.hub.data_dir / WATER_CALIBRATION_FILE)
    import models.detect

    return cli_models.run(args, models.detect)


if __name__ == "__main__":
    raise SystemExit(main())
