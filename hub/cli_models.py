"""`homeguard-hub models info`, `models score` and `models recalibrate`: the anomaly models' cards,
a CSV scored the way the daemon scores a stream, and forgetting the water system's calibration.

The kernel does not import the `models` package; `hub.cli` hands it in as `backend` (any object
with the functions of `ModelsBackend`, which `models.detect` has).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hub.cli_output import emit_json, table

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


class _Scores(Protocol):
    @property
    def scores(self) -> npt.NDArray[np.float64]: ...
    @property
    def is_anomaly(self) -> npt.NDArray[np.bool_]: ...
    @property
    def threshold(self) -> float: ...


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
        type=int,
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
        "the hub calibrates afresh when next started",
    )
    recalibrate.set_defaults(handler=handler, models_action="recalibrate")


def run(args: argparse.Namespace, backend: ModelsBackend) -> int:
    if args.models_action == "info":
        return _info(backend, as_json=args.json)
    return _score(args, backend)


def recalibrate(path: Path) -> int:
    """Remove the water system's kept calibration (`models recalibrate`)."""
    try:
        path.unlink()
    except FileNotFoundError:
        print(f"no calibration kept ({path} does not exist): nothing to do")
        return 0
    except OSError as err:
        print(f"cannot remove {path}: {err}", file=sys.stderr)
        return 1
    print(
        f"removed {path}; the hub calibrates the water system afresh when next started "
        "(sudo systemctl restart homeguard-hub), on its first rows of normal operation"
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


def _score(args: argparse.Namespace, backend: ModelsBackend) -> int:
    try:
        text = sys.stdin.read() if args.csv == "-" else Path(args.csv).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        print(f"cannot read {args.csv}: {err}", file=sys.stderr)
        return EXIT_INPUT
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    try:
        data = backend.read_csv(text, columns)
    except ValueError as err:
        print(f"{args.csv}: {err}", file=sys.stderr)
        return EXIT_INPUT
    model = args.model or ("univariate" if data.values.shape[1] == 1 else "water_system")
    if model not in backend.list_models():
        print(f"no model {model!r} (models: {', '.join(backend.list_models())})", file=sys.stderr)
        return EXIT_INPUT
    problem = backend.check_model(model)
    if problem is not None:
        print(f"model refused: {problem}", file=sys.stderr)
        return 1
    try:
        result = backend.score_table(model, data.timestamps, data.values, args.calibrate_rows)
    except ValueError as err:
        print(f"{args.csv}: {err}", file=sys.stderr)
        return EXIT_INPUT
    out = ["timestamp,anomaly_score,is_anomaly"]
    for stamp, score, flag in zip(
        data.stamps, result.scores.tolist(), result.is_anomaly.tolist(), strict=True
    ):
        out.append(f"{_csv_cell(stamp)},{score:.6f},{int(flag)}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
