"""Run every benchmark and print a summary table (Markdown) for the README, targets beside.

    python -m bench            # or: python -m bench.run_all [--quick]

About 3 minutes on the 2-core build machine; `--quick` is a smoke run of about a minute (fewer
leaks, a shorter CPU window, a smaller blast: its figures are not the ones to quote).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from dataclasses import dataclass

from bench import footprint, leak_latency, throughput
from bench._common import READINGS_PER_MESSAGE, mib, ratio


@dataclass(frozen=True)
class Row:
    measure: str
    hub: str
    baseline: str
    vs_baseline: str
    target: str = ""
    met: bool | None = None


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def latency_rows(r: leak_latency.Result) -> list[Row]:
    rows: list[Row] = []
    limits = {"idle": 2.0, "loaded": 4.0}
    for load in leak_latency.LOADS:
        hub = leak_latency.summary(r.pooled("hub", load))
        floor = leak_latency.summary(r.pooled("floor", load))
        (h50, h99, hmax), (f50, f99, fmax) = hub, floor
        rows += [
            Row(f"Leak→valve p50, {load}", _ms(h50), _ms(f50), f"{ratio(h50, f50):.1f}x"),
            Row(
                f"Leak→valve p99, {load}",
                _ms(h99),
                _ms(f99),
                f"{ratio(h99, f99):.1f}x",
                f"≤ {limits[load]:g} ms",
                h99 <= limits[load],
            ),
            Row(
                f"Leak→valve max, {load}",
                _ms(hmax),
                _ms(fmax),
                f"{ratio(hmax, fmax):.1f}x",
                "< 10 ms",
                hmax < 10.0,
            ),
        ]
    missed = r.missed("hub")
    rows.append(
        Row(
            "Leaks with no valve command", str(missed), str(r.missed("floor")), "", "0", missed == 0
        )
    )
    return rows


def throughput_row(r: throughput.Result) -> Row:
    hub, bare = r.rate("hub"), r.rate("bare")
    share = ratio(hub, bare)
    return Row(
        "Sustained readings/s (blast, end to end)",
        f"{hub * READINGS_PER_MESSAGE:,.0f}",
        f"{bare * READINGS_PER_MESSAGE:,.0f}",
        f"{share:.0%}",
        "≥ 60 % of bare",
        share >= 0.60,
    )


def footprint_rows(r: footprint.Result) -> list[Row]:
    hub, paho_, aio = r.usage["hub"], r.usage["paho-sub"], r.usage["aiomqtt-sub"]
    rules = r.usage["hub-rules-only"]
    rate = r.options.rate * READINGS_PER_MESSAGE
    peak = max(hub.peak_rss, hub.vm_hwm)
    rules_peak = max(rules.peak_rss, rules.vm_hwm)
    aio_peak = max(aio.peak_rss, aio.vm_hwm)
    start, aio_start = r.startup("hub"), r.startup("aiomqtt-sub")
    return [
        Row(
            f"CPU at {rate:,.0f} readings/s, % of a core",
            f"{hub.cpu_pct:.1f} %",
            f"{paho_.cpu_pct:.1f} % paho, {aio.cpu_pct:.1f} % aiomqtt",
            f"{ratio(hub.cpu_pct, aio.cpu_pct):.1f}x",
            "≤ 15 %",
            hub.cpu_pct <= 15.0,
        ),
        Row(
            "Peak RSS (VmHWM), rules only (`[anomaly] enabled = false`)",
            f"{mib(rules_peak):.1f} MiB = {rules_peak / 1e6:.1f} MB",
            f"{mib(aio_peak):.1f} MiB",
            f"{ratio(rules_peak, aio_peak):.1f}x",
            "≤ 64 MB",
            rules_peak <= 64e6,  # decimal megabytes: the stricter reading
        ),
        Row(
            "Peak RSS (VmHWM), as shipped (with the anomaly models)",
            f"{mib(peak):.1f} MiB (+{(peak - rules_peak) / 1e6:.1f} MB for the models)",
            f"{mib(aio_peak):.1f} MiB",
            f"{ratio(peak, aio_peak):.1f}x",
            "models < 40 MB",
            peak - rules_peak < 40e6,
        ),
        Row(
            f"Start-up to ready (median of {r.options.starts})",
            f"{start:.2f} s",
            f"{aio_start:.2f} s",
            f"{ratio(start, aio_start):.1f}x",
            "< 1 s",
            start < 1.0,
        ),
    ]


def markdown(rows: list[Row]) -> str:
    head = ["Measure", "Hub", "Baseline", "Hub/baseline", "Target", "Met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**NO**")
        lines.append(
            f"| {r.measure} | {r.hub} | {r.baseline} | {r.vs_baseline} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> str:
    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return (
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{mosquitto[0] if mosquitto else 'mosquitto ?'}, loopback"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run, figures not to quote")
    quick = p.parse_args(argv).quick
    started = time.monotonic()
    leak = leak_latency.run(
        leak_latency.Options(rounds=1, trials=50) if quick else leak_latency.Options()
    )
    print()
    thr = throughput.run(throughput.Options(messages=20_000) if quick else throughput.Options())
    print()
    fp = footprint.run(footprint.Options(window_s=5.0, starts=3) if quick else footprint.Options())
    rows = [*latency_rows(leak), throughput_row(thr), *footprint_rows(fp)]
    print(f"\n## Benchmarks ({machine()})\n")
    print(markdown(rows))
    print(
        "\nBaselines, same run: latency vs a bare paho forwarder process (the floor; it subscribes "
        "only the leak topic, so under load it shares the machine and broker but receives none "
        "of the readings); throughput "
        "vs a bare aiomqtt `async for` subscriber; CPU and memory vs bare paho / aiomqtt "
        f"subscribers at the same load; start-up vs the bare aiomqtt subscriber. Load = "
        f"{leak.options.rate:.0f} messages/s of {READINGS_PER_MESSAGE} readings. "
        f"{leak.options.trials * leak.options.rounds} leaks per latency row."
    )
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
