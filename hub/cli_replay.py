"""`homeguard-hub replay FILE`: decode recorded BLE advertisements with the configured devices.

Prints the readings that come out, what was refused (a wrong bind key, a spoofed plaintext
advert...), the BTHome/Xiaomi devices in the recording that are not configured, and the lines
of the file that are not adverts. Nothing is sent anywhere: it is a dry run of the BLE driver.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hub.clock import rfc3339
from hub.config import BLE_ADAPTERS, Config
from hub.events import Reading
from hub.measurements import UNITS


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `replay` on the CLI's subcommands."""
    p = subparsers.add_parser(
        "replay", help="decode a recording of BLE adverts with the configured BLE devices"
    )
    p.add_argument("file", type=Path, help="a recording: one JSON advert a line (see the docs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=replay)


def replay(args: argparse.Namespace, config: Config) -> int:
    from drivers.ble.decode import Decoder, quiet_libraries
    from drivers.ble.recording import read_recording

    path: Path = args.file
    try:
        recording = read_recording(path)
    except OSError as err:
        print(f"cannot read {path}: {err.strerror or err}", file=sys.stderr)
        return 1
    devices = [d for d in config.devices if d.adapter in BLE_ADAPTERS]
    if not devices and not args.json:
        print(
            "note: no bthome or xiaomi devices are configured: nothing will decode into "
            "readings (devices in the recording are listed as discovered)",
            file=sys.stderr,
        )
    decoder = Decoder(devices)
    events: list[dict[str, Any]] = []
    ignored = 0
    for advert in recording.adverts:
        with quiet_libraries():  # what they would warn about is printed as REFUSED below
            decoded = decoder.decode(advert)
        if decoded.device_id is None and decoded.discovered is None:
            ignored += 1
        events.extend(_reading(r) for r in decoded.readings)
        events.extend(
            {
                "type": "refused",
                "at": advert.time,
                "device_id": decoded.device_id,
                "reason": err.reason.value,
                "detail": err.detail,
            }
            for err in decoded.refused
        )
        if (found := decoded.discovered) is not None:
            events.append(
                {
                    "type": "discovered",
                    "at": found.at,
                    "device_id": found.device_id,
                    "address": advert.address,
                    "adapter": found.adapter,
                    "name": found.name,
                    "model": found.model,
                    "exposes": list(found.exposes),
                }
            )
    bad = [
        {"line": line, "reason": err.reason.value, "detail": err.detail}
        for line, err in recording.bad_lines
    ]
    summary = {
        "adverts": len(recording.adverts),
        "readings": sum(e["type"] == "reading" for e in events),
        "refused": sum(e["type"] == "refused" for e in events),
        "discovered": sum(e["type"] == "discovered" for e in events),
        "not_configured": ignored,
        "bad_lines": len(bad),
    }
    if args.json:
        from hub.cli_output import emit_json

        emit_json({"file": str(path), "events": events, "bad_lines": bad, "summary": summary})
        return 0
    for e in events:
        print(_line(e))
    for b in bad:
        print(f"{path}:{b['line']}: skipped: {b['reason']}: {b['detail']}")
    print(
        f"{summary['adverts']} adverts: {summary['readings']} readings, "
        f"{summary['refused']} refused, {summary['discovered']} discovered, "
        f"{summary['not_configured']} from other devices; {summary['bad_lines']} bad lines"
    )
    return 0


def _reading(r: Reading) -> dict[str, Any]:
    return {
        "type": "reading",
        "at": r.at,
        "device_id": r.device_id,
        "measurement": r.measurement.value,
        "value": r.value,
        "unit": UNITS.get(r.measurement),
    }


def _line(e: dict[str, Any]) -> str:
    head = f"{rfc3339(e['at'])}  {e['device_id'] or '?'}"
    if e["type"] == "reading":
        value = e["value"]
        if isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = f"{value:g}" if isinstance(value, float | int) else str(value)
        unit = f" {e['unit']}" if e["unit"] else ""
        return f"{head}  {e['measurement']} = {shown}{unit}"
    if e["type"] == "refused":
        return f"{head}  REFUSED {e['reason']}: {e['detail']}"
    exposes = ", ".join(e["exposes"]) or "nothing readable"
    return (
        f"{head}  DISCOVERED {e['adapter']} {e['model']} ({e['name']}) at {e['address']}, "
        f"not configured: {exposes}"
    )


__all__ = ["add_parser", "replay"]
