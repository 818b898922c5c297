"""Model files are checked against their cards: a wrong checksum is refused, never loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models import runtime
from models.runtime import MODELS_DIR, ChecksumMismatch, ModelNotFound, load


def _copy_models(tmp_path: Path) -> Path:
    for name in runtime.available():
        for suffix in (".onnx", ".card.json"):
            shutil.copy(MODELS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path


def test_shipped_models_match_their_cards() -> None:
    for name in runtime.available():
        model = load(name)
        card = json.loads((MODELS_DIR / f"{name}.card.json").read_text())
        assert model.card == card
        data = (MODELS_DIR / card["file"]).read_bytes()
        assert runtime.sha256_of(data) == card["sha256"]
        assert card["size_bytes"] == len(data)
        for key in ("version", "inputs", "outputs", "threshold", "training", "onnx_opset"):
            assert key in card


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    directory = _copy_models(tmp_path)
    path = directory / "univariate.onnx"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one weight changes
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as err:
        load("univariate", directory)
    assert err.value.name == "univariate"
    assert err.value.actual == runtime.sha256_of(bytes(data))
    assert err.value.expected != err.value.actual
    load("water_system", directory)  # the other model is unaffected


def test_a_card_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    directory = _copy_models(tmp_path)
    card_path = directory / "water_system.card.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(ChecksumMismatch):
        load("water_system", directory)


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        load("univariate", tmp_path)
    assert runtime.available(tmp_path) == []


def test_session_is_single_threaded_and_runs_batches() -> None:
    model = load("univariate")
    rows = np.zeros((64, model.session.get_inputs()[0].shape[1]), dtype=np.float32)
    assert model.run(rows).shape == (64, 1)
    assert model.run(rows[:0]).shape[0] == 0


def test_exported_mlp_computes_what_its_weights_say(tmp_path: Path) -> None:
    from models.train.export import write_mlp

    rng = np.random.default_rng(0)
    layers = [
        (rng.normal(size=(15, 8)), rng.normal(size=8)),
        (rng.normal(size=(8, 4)), rng.normal(size=4)),
        (rng.normal(size=(4, 1)), rng.normal(size=1)),
    ]
    write_mlp(tmp_path / "m.onnx", layers, n_inputs=15, input_name="features", doc="test")
    card = {
        "file": "m.onnx",
        "version": "0",
        "sha256": runtime.sha256_of((tmp_path / "m.onnx").read_bytes()),
    }
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    rows = rng.normal(size=(32, 15)).astype(np.float32)
    h = rows.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    np.testing.assert_allclose(load("m", tmp_path).run(rows), h, rtol=1e-4, atol=1e-4)
