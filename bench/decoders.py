"""Decoders: messages/s and readings/s through each decoder family, beside the bare library parse.

    python -m bench.decoders [--seconds 0.6] [--rounds 5]

No I/O and no broker: one captured payload (from the tests) is fed again and again through the
hub's real decoding path into a counting sink, and beside it the raw library does the bare parse of
the same bytes. Each side of each row is timed with `time.perf_counter` for about `--seconds`,
split into `--rounds` rounds after a calibration run that doubles as warm-up; the figure is the
median round. `hub/baseline` is hub µs per message ÷ baseline µs per message (2.0x: the hub takes
twice as long as the bare parse).

What "the hub's path" is, per family:

* MQTT: the adapter's `decode(topic, payload, at)`, the work `MqttService.on_message` does for a
  message (its `owns` scan and the bus publish are left out); readings go to the sink's `emit`.
  Baseline: `json.loads` of the payload.
* Serial: the pure decoder (`sdm.decode_registers`, `dsmr.decode_telegram`,
  `json_lines.decode_line`) and the `Router` that turns its samples into readings, as the serial
  service does after a poll or a frame (the framers are left out). Baselines: pymodbus'
  `convert_from_registers` of each FLOAT32 the profile reads; dsmr-parser's
  `TelegramParser(telegram_specifications.V5).parse(text)`; `json.loads`.
* BLE: `drivers.ble.decode.Decoder(devices).decode(advert)` (which builds the library's
  `BluetoothServiceInfoBleak` per advert, as the scanner path does). Baseline: bthome-ble's
  `BTHomeBluetoothDeviceData(bindkey).update(service_info)` / xiaomi-ble's
  `XiaomiBluetoothDeviceData(bindkey).update(service_info)` on a prebuilt service info.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._common import median
from bench.decoder_cases import Case, ble_cases, mqtt_cases, serial_cases
from drivers.ble.decode import quiet_libraries


@dataclass(frozen=True)
class Row:
    case: Case
    readings_per_msg: float
    refused_per_msg: float
    hub_s: float  # seconds per message
    base_s: float


# -- timing ---------------------------------------------------------------------------------------


def _loop(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - started


def seconds_per_call(fn: Callable[[], object], seconds: float, rounds: int) -> float:
    """Median over `rounds` rounds of about `seconds / rounds` each, after a calibration run
    (doubling until it takes 20 ms) that also warms up."""
    n = 1
    while (took := _loop(fn, n)) < 0.02:
        n *= 2
    per_round = max(1, int(n * (seconds / rounds) / took))
    return median([_loop(fn, per_round) / per_round for _ in range(rounds)])


def measure(case: Case, seconds: float, rounds: int) -> Row:
    sink = case.sink
    sink.readings = sink.refused = 0
    sample = 200
    for _ in range(sample):
        case.hub()
    readings, refused = sink.readings / sample, sink.refused / sample
    hub_s = seconds_per_call(case.hub, seconds, rounds)
    base_s = seconds_per_call(case.baseline, seconds, rounds)
    return Row(case, readings, refused, hub_s, base_s)


def markdown(rows: list[Row]) -> str:
    head = [
        "family",
        "payload",
        "readings/message",
        "hub msgs/s",
        "µs/msg",
        "baseline msgs/s",
        "hub/baseline",
        "hub readings/s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r.case.family} | {r.case.payload} | {r.readings_per_msg:.2f} | "
            f"{1 / r.hub_s:,.0f} | {r.hub_s * 1e6:.1f} | {1 / r.base_s:,.0f} | "
            f"{r.hub_s / r.base_s:.1f}x | {r.readings_per_msg / r.hub_s:,.0f} |"
        )
    return "\n".join(lines)


def run(seconds: float, rounds: int) -> list[Row]:
    rows: list[Row] = []
    with quiet_libraries():
        cases = [*mqtt_cases(), *serial_cases(), *ble_cases()]
        for case in cases:
            row = measure(case, seconds, rounds)
            rows.append(row)
            print(
                f"  {case.family:14} {case.payload:34} hub {row.hub_s * 1e6:8.1f} µs  "
                f"baseline {row.base_s * 1e6:8.1f} µs  {row.readings_per_msg:.2f} readings/msg"
                + (f"  {row.refused_per_msg:.2f} refused/msg" if row.refused_per_msg else ""),
                flush=True,
            )
    print()
    print(markdown(rows))
    print(
        "\nhub/baseline = hub µs per message / baseline µs per message. Baselines: json.loads of "
        "the payload (MQTT, JSON lines); pymodbus convert_from_registers of each FLOAT32 read "
        "(SDM); dsmr-parser TelegramParser(V5).parse (DSMR); bthome-ble / xiaomi-ble "
        "update(service_info) (BLE). Median of "
        f"{rounds} rounds, ~{seconds:g} s per side per row."
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.decoders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=0.6, help="timed seconds per side per row")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    started = time.monotonic()
    run(a.seconds, a.rounds)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
