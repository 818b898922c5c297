"""`homeguard-hub models info`, `models score` and `models recalibrate`: the anomaly models' cards,
a CSV scored the way the daemon scores a stream, and forgetting the water system's calibration.

`models score` says on stderr how many rows were not scored and why (they print a score of 0),
and refuses a file in which no row can be scored. `models recalibrate` leaves a marker beside
the calibration file (`hub.config.recalibrate_marker`) and removes the file: the running hub, which would
otherwise write its calibration (or stretch) back at its next save, sees the marker instead and
calibrates afresh (`models.water_service`).

The kernel does not import the `models` package; `hub.cli` hands it in as `backend` (any object
with the functions of `ModelsBackend`, which `models.detect` has).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hub.atomic_file import write_json
from hub.cli_output import emit_json, table
from hub.config import recalibrate_marker

if TYPE_CHECKING:  # numpy is imported only when a command needs it (keeps `status` fast)
    import numpy as np
    import numpy.typing as npt

EXIT_INPUT = 2

Handler = Callable[[argparse.Namespace, Any], int]


class _Table(Protocol):
    @property
    def stamps(self) -> list[str]: ...
    @property
    def timestamps(self) -> npt.NDArray[np.float64]: ...
    @property
    def values(self) -> npt.NDArray[np.float64]: ...
    @property
    def columns(self) -> list[str]: ...
    @property
    def lines(self) -> list[int]: ...


class _Refused(Protocol):
    @property
    def reason(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def first(self) -> int: ...
    @property
    def hint(self) -> str: ...


class _Scores(Protocol):
    @property
    def scores(self) -> npt.NDArray[np.float64]: ...
    @property
    def is_anomaly(self) -> npt.NDArray[np.bool_]: ...
    @property
    def threshold(self) -> float: ...
    @property
    def refused(self) -> Sequence[_Refused]: ...
    @property
    def ignored_values(self) -> int: ...
    @property
    def scored(self) -> int: ...


class ModelsBackend(Protocol):
    def list_models(self) -> list[str]: ...
    def model_card(self, model: str) -> dict[str, Any]: ...
    def check_model(self, model: str) -> str | None: ...
    def read_csv(self, text: str, columns: list[str] | None = None) -> _Table: ...
    def score_table(
        self,
        model: str,
        timestamps: npt.NDArray[np.float64],
        values: npt.NDArray[np.float64],
        calibrate_rows: int | None = None,
    ) -> _Scores: ...


def add_parser(sub: Any, handler: Handler) -> None:
    """Register `models info`, `models score` and `models recalibrate` under the CLI's subcommands."""
    models = sub.add_parser(
        "models", help="anomaly models: their cards, score a CSV, or recalibrate the water system"
    )
    models_sub = models.add_subparsers(required=True, metavar="ACTION")
    info = models_sub.add_parser("info", help="the models, their cards and checksum status")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=handler, models_action="info")
    score = models_sub.add_parser(
        "score",
        help="score a CSV (timestamp, numeric columns) causally; prints "
        "timestamp,anomaly_score,is_anomaly",
    )
    score.add_argument("csv", help="the CSV file, or - for stdin")
    score.add_argument(
        "--columns", help="comma-separated value columns (names or 1-based positions)"
    )
    score.add_argument(
        "--calibrate-rows",
        type=_row_count,
        metavar="N",
        help="the first N rows are the calibration stretch (they score 0)",
    )
    score.add_argument(
        "--model", help="univariate (one column, the default) or water_system (8 columns)"
    )
    score.set_defaults(handler=handler, models_action="score")
    recalibrate = models_sub.add_parser(
        "recalibrate",
        help="forget the water system's calibration (after a pump or sensor is replaced); "
        "the hub calibrates afresh from its next save (within the hour) or its next start",
    )
    recalibrate.set_defaults(handler=handler, models_action="recalibrate")


def _row_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def run(args: argparse.Namespace, backend: ModelsBackend) -> int:
    if args.models_action == "info":
        return _info(backend, as_json=args.json)
    return _score(args, backend)


def recalibrate(path: Path) -> int:
    """Ask the hub to calibrate the water system afresh (`models recalibrate`): leave the marker
    (atomically), then remove the kept calibration or stretch, if any."""
    marker = recalibrate_marker(path)
    try:
        write_json(marker, {"requested_at": time.time()})
    except OSError as err:
        print(f"cannot write {marker}: {err}", file=sys.stderr)
        return 1
    try:
        path.unlink()
    except FileNotFoundError:
        what = f"no calibration kept ({path} does not exist)"
    except OSError as err:
        print(f"cannot remove {path}: {err}", file=sys.stderr)
        what = f"{path} is left for the hub to remove"
    else:
        what = f"removed {path}"
    print(
        f"{what}; the running hub forgets its water system calibration at its next save (within "
        "the hour; at once: sudo systemctl restart homeguard-hub) and calibrates afresh on its "
        "first day of normal operation"
    )
    return 0


def _info(backend: ModelsBackend, *, as_json: bool) -> int:
    cards = []
    for name in backend.list_models():
        card = backend.model_card(name)
        problem = backend.check_model(name)
        cards.append({**card, "usable": problem is None, "problem": problem})
    if as_json:
        emit_json(cards)
        return 0
    rows = [
        (
            c["name"],
            c["version"],
            "ok" if c["usable"] else "REFUSED",
            f"{c.get('threshold', '?')}",
            f"{c.get('size_bytes', 0) / 1024:.1f} kB",
            str(c["sha256"])[:12],
            str(c.get("kind", "")),
        )
        for c in cards
    ]
    print(table(("MODEL", "VERSION", "CHECKSUM", "THRESHOLD", "SIZE", "SHA256", "KIND"), rows))
    for c in cards:
        if c["problem"]:
            print(f"  {c['name']}: {c['problem']}", file=sys.stderr)
    return 0


class _Stop(Exception):
    """`models score` stops: `message` goes to stderr, `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _score(args: argparse.Namespace, backend: ModelsBackend) -> int:
    try:
        data, model = _read(args, backend)
        result = _score_data(args, backend, data, model)
    except _Stop as stop:
        print(stop.message, file=sys.stderr)
        return stop.code
    out = ["timestamp,anomaly_score,is_anomaly"]
    for stamp, score, flag in zip(
        data.stamps, result.scores.tolist(), result.is_anomaly.tolist(), strict=True
    ):
        out.append(f"{_csv_cell(stamp)},{score:.6f},{int(flag)}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _read(args: argparse.Namespace, backend: ModelsBackend) -> tuple[_Table, str]:
    """The table to score and the model to score it with; `_Stop` saying why not."""
    try:
        text = sys.stdin.read() if args.csv == "-" else Path(args.csv).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _Stop(f"cannot read {args.csv}: {err}") from err
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    try:
        data = backend.read_csv(text, columns)
    except ValueError as err:
        raise _Stop(f"{args.csv}: {err}") from err
    model = args.model or ("univariate" if data.values.shape[1] == 1 else "water_system")
    if model not in backend.list_models():
        raise _Stop(f"no model {model!r} (models: {', '.join(backend.list_models())})")
    problem = backend.check_model(model)
    if problem is not None:
        raise _Stop(f"model refused: {problem}", 1)
    if not data.stamps:
        raise _Stop(f"{args.csv}: no rows to score")
    return data, model


def _score_data(
    args: argparse.Namespace, backend: ModelsBackend, data: _Table, model: str
) -> _Scores:
    """The scores, having said on stderr what was not scored; `_Stop` when no row was."""
    try:
        result = backend.score_table(model, data.timestamps, data.values, args.calibrate_rows)
    except ValueError as err:
        raise _Stop(f"{args.csv}: {err}") from err
    summary = _refusals(result, data)
    if result.scored == 0:
        raise _Stop(f"{args.csv}: no row can be scored: {summary}")
    if summary:
        print(f"models score: {summary}", file=sys.stderr)
    return result


def _refusals(result: _Scores, data: _Table) -> str:
    """What was not scored, by reason, with the line of the first row of each ('' if nothing)."""
    total = len(data.stamps)
    parts = []
    refused = sum(r.rows for r in result.refused)
    if refused:
        reasons = ", ".join(
            f"{r.rows:,} {r.reason} (first: line {_line(data, r.first)}"
            + (f"; {r.hint})" if r.hint else ")")
            for r in result.refused
        )
        parts.append(f"{refused:,} of {total:,} rows not scored (they score 0): {reasons}")
    if result.ignored_values:
        parts.append(
            f"{result.ignored_values:,} values beyond ±1e15 read as missing (the column's last "
            "value is carried forward)"
        )
    return "; ".join(parts)


def _line(data: _Table, row: int) -> str:
    return str(data.lines[row])


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
