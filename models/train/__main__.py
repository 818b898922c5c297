"""`python -m models.train [--skab DIR] [--seed N] [--only NAME]`: retrain the shipped models.

Needs the `train` extra (scikit-learn, onnx). Writes `models/<name>.onnx` and its card (with the
file's sha256) into the package directory. Deterministic for a given seed and data.

The shipped univariate model is trained on synthetic streams only: SKAB's data is GPL-3.0, and
weights learnt from it would carry that question into an Apache-2.0 package. `--skab DIR` adds
SKAB's anomaly-free recording to its training set, for experiments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from models.runtime import load

_log = logging.getLogger("models.train")

DEFAULT_SKAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "skab"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument(
        "--skab",
        type=Path,
        default=None,
        help="also train the univariate model on SKAB's anomaly-free/ recording (GPL-3.0 data)",
    )
    p.add_argument("--only", choices=["univariate", "water_system"])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.only in (None, "univariate"):
        from models.train import univariate_card

        univariate_card.build(args.seed, args.skab)
        _log.info("univariate: %s", load("univariate").card["metrics"])
    if args.only in (None, "water_system"):
        from models.train import water_card

        water_card.build(args.seed, args.skab or DEFAULT_SKAB)
        _log.info("water_system: %s", load("water_system").card["metrics"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
