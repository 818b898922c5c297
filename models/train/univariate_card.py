"""Build `univariate.onnx` and its card."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.features import N_UNIVARIATE, PROFILE_SLOTS, WINDOW
from models.likelihood import LikelihoodParams
from models.runtime import MODELS_DIR, load
from models.train import metrics, univariate
from models.train.export import write_card, write_mlp
from models.univariate import UnivariateDetector

_log = logging.getLogger(__name__)

VERSION = "1.4.0"
#: Measured with `python -m bench.anomaly` (NAB's protocol: threshold optimised over the corpus
#: per profile; the figures at the model's own threshold 0.5 beside them). NAB is never trained
#: on; its labels were used only to compare a handful of method variants (see models/README.md).
EVALUATION = {
    "nab_v1.1": {
        "standard": 75.26,
        "reward_low_fp": 70.39,
        "reward_low_fn": 78.91,
        "standard_at_own_threshold": 75.07,
        "reward_low_fp_at_own_threshold": 70.01,
        "published_best_standard": "ARTime 74.85",
        "published_best_reward_low_fp": "CAD OSE 66.98",
    },
}


def build(seed: int, skab_dir: Path | None, directory: Path = MODELS_DIR) -> None:
    _log.info("univariate: training the forecaster (seed %d)", seed)
    mlp, data = univariate.train(seed, skab_dir)
    layers = list(zip(mlp.coefs_, mlp.intercepts_, strict=True))
    write_mlp(
        directory / "univariate.onnx",
        layers,
        n_inputs=N_UNIVARIATE,
        input_name="features",
        doc="HomeGuard univariate forecaster: next normalised value from models.features",
    )
    params = LikelihoodParams()
    card: dict[str, Any] = {
        "version": VERSION,
        "kind": (
            "univariate streaming detector (MLP forecast surprise + value rarity + new extreme"
            " + stuck run, on the readings and on their block means; hourly means against the"
            " same hour of earlier weeks)"
        ),
        "applies_to": [
            "power",
            "current",
            "voltage",
            "temperature",
            "humidity",
            "flow",
            "pressure",
        ],
        "inputs": {
            "name": "features",
            "shape": ["N", N_UNIVARIATE],
            "dtype": "float32",
            "definition": (
                f"models.features.UnivariateFeatures: the last {WINDOW} values (most recent first), "
                f"the stream's value in this slot of its daily profile ({PROFILE_SLOTS} slots), "
                "whether that slot is known, log of the gap over the usual interval; values "
                "normalised by the stream's running level and spread (span 300 readings), clipped "
                "to +-10; a row per reading, and one per `slow_block` readings built the same way "
                "from the stream of their means"
            ),
        },
        "outputs": {
            "name": "output",
            "shape": ["N", 1],
            "definition": "forecast of the normalised reading",
        },
        "streaming": params.to_card(),
        "scoring": (
            "models.likelihood: max of (1) the anomaly likelihood of the forecast error (cubed; after "
            "the first day only when its short-term mean is over `surprise_gate` x a tracked "
            "`surprise_quantile` of them), (2) the rarity of the value in a slowly forgetting "
            "histogram (once it fires, held until `rarity_hold` readings pass without another "
            "visit to new territory), (3) a value beyond the stream's "
            "range so far by more than `spatial_tolerance` of it (HTM's spatial anomaly), after its "
            "first day, (4) a run of identical values longer than 3x any before; channels 1-3 also on "
            "the means of `slow_block` readings in a row (the block scale: its own features and "
            "state, the same forecaster), entering at each block's last reading; (5) the week's "
            "rhythm (models.weekly): each `week_slot_s` slot's mean against the same slot of "
            "earlier weeks (a profile learnt at `week_rate`, used once a slot was seen in "
            "`week_after` weeks, each difference learnt up to `week_clip` usual ones unless the "
            "slot differed that way the week before too, then taken as its new usual; the usual "
            "difference learns at most `week_cap` of them; a slot whose readings are further "
            "apart than `week_gap_factor` usual intervals and `week_gap_share` of it is skipped), "
            "the anomaly likelihood of the last `week_short` differences, once `week_wait` are "
            "weighed, held for `week_hold` compared slots once it fires; "
            "'level' before, "
            "'event' after suppressing repeats for `suppress` readings after a detection; the "
            "first `warmup` readings score 0"
        ),
        "threshold": params.threshold,
        "training": {
            "command": "python -m models.train --only univariate",
            "seed": seed,
            "procedure": (
                f"scikit-learn MLPRegressor {list(univariate.HIDDEN)} ReLU, Adam, squared error, "
                "early stopping on 10% of rows; exported as Gemm/Relu"
            ),
            "data": (
                "synthetic household streams (models.train.synthetic: daily cycles, appliance and "
                "HVAC cycles, noise; 10 s to 5 min sampling)"
                + (
                    " and the columns of SKAB anomaly-free (normal operation only; GPL-3.0 data)"
                    if skab_dir is not None
                    else " only (SKAB's GPL-3.0 recordings are left out of the shipped weights)"
                )
                + "; no NAB data, no labelled SKAB file"
            ),
            **data,
        },
    }
    write_card("univariate", card, directory)
    detector = UnivariateDetector(load("univariate", directory))
    card["metrics"] = {
        "synthetic": metrics.univariate_metrics(detector, seed + 1),
        "evaluation": EVALUATION,
    }
    write_card("univariate", card, directory)
