"""Model files are checked against their cards: a wrong checksum is refused, never loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from models import ort_capi, runtime
from models.ort_capi import OrtError, Session, Tensor
from models.runtime import MODELS_DIR, ChecksumMismatch, ModelError, ModelNotFound, load

REPO = Path(__file__).resolve().parent.parent


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


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_a_session_starts_no_threads_and_runs_any_batch() -> None:
    ort_capi.api()  # the process's onnxruntime environment (it keeps one thread of its own)
    before = _threads()
    model = load("univariate")
    width = model.card["inputs"]["shape"][1]
    out = model.run({"features": Tensor.of_rows([[0.5] * width] * 64, width)})
    assert out.shape == (64, 1)
    assert len(set(out.column(0))) == 1  # equal rows, equal forecasts
    assert model.run({"features": Tensor.of_rows([], width)}).shape == (0, 1)
    assert _threads() == before  # one intra-op and one inter-op thread: the caller's own


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
    out = load("m", tmp_path).run({"features": Tensor.of_rows(rows.tolist(), 15)})
    assert out.shape == (32, 1)
    np.testing.assert_allclose(np.asarray(out.values).reshape(out.shape), h, rtol=1e-4, atol=1e-4)


def test_bytes_onnxruntime_cannot_parse_are_refused_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    card = {"file": "m.onnx", "version": "0", "sha256": runtime.sha256_of(b"not a model")}
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"onnxruntime cannot load .*m\.onnx.*protobuf"):
        load("m", tmp_path)


def test_a_run_onnxruntime_refuses_raises_its_message_and_the_session_runs_on() -> None:
    model = load("univariate")
    with pytest.raises(OrtError, match=r"takes inputs \['features'\], got \['x'\]"):
        model.run({"x": Tensor.of_rows([[0.0] * 15], 15)})
    with pytest.raises(OrtError, match=r"(?s)Run: .*invalid dimensions.*Expected: 15"):
        model.run({"features": Tensor.of_rows([[0.0] * 14], 14)})
    assert model.run({"features": Tensor.of_rows([[0.0] * 15], 15)}).shape == (1, 1)


def test_a_tensor_is_float32_of_its_shape() -> None:
    with pytest.raises(TypeError, match="float32"):
        Tensor(array("d", [1.0]), (1,))
    with pytest.raises(ValueError, match=r"shape \(2, 2\) does not hold 3 values"):
        Tensor(array("f", [1.0, 2.0, 3.0]), (2, 2))
    with pytest.raises(ValueError, match="rows of 3 values expected"):
        Tensor.of_rows([[1.0, 2.0, 3.0], [4.0, 5.0]], 3)
    with pytest.raises(ValueError, match="rows of 2 values expected"):
        Tensor.of_rows([[1.0, 2.0, 3.0], [4.0]], 2)  # as many values as 2 x 2, ragged
    with pytest.raises(ValueError, match=r"shape \(-1, -4\) does not hold 4"):
        Tensor(array("f", [1.0] * 4), (-1, -4))


def test_a_library_that_cannot_be_loaded_is_named() -> None:
    assert ort_capi.library_path().name.startswith("libonnxruntime")
    with pytest.raises(OrtError, match=r"cannot load onnxruntime's C library /nonexistent/lib\.so"):
        ort_capi._Api(Path("/nonexistent/lib.so"))


def test_the_daemons_models_run_without_numpy_or_the_python_binding() -> None:
    """What the daemon imports and runs to score: numpy and onnxruntime's Python binding (about
    16 MiB of resident memory, `bench.model_memory`) stay out of the process."""
    script = """
import math, sys
import hub.daemon, models.service
from models.runtime import load
from models.univariate import StreamState, UnivariateDetector
from models.water import WaterDetector
uni = UnivariateDetector(load("univariate"))
state = StreamState()
scores = uni.score_batch([(state, 60.0 * i, 20 + math.sin(i / 9)) for i in range(400)])
water = WaterDetector(load("water_system"))
rows = [[1 + math.sin(i / 7 + j) for j in range(8)] for i in range(300)]
t2 = water.score_table([float(i) for i in range(300)], rows, 200)
assert any(s is not None for s in scores) and any(v > 0 for v in t2[200:]), (scores[-1], t2[-1])
print(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "onnxruntime")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_onnxruntime_keeps_no_telemetry_in_the_hubs_home(tmp_path: Path) -> None:
    """Official onnxruntime builds keep a device id and a telemetry event cache under
    ~/.cache/Microsoft for upload; the hub opts out before the library starts."""
    script = """
from models.ort_capi import Tensor
from models.runtime import load
load("univariate").run({"features": Tensor.of_rows([[0.0] * 15], 15)})
"""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.rglob("*")) == []


def test_a_graph_whose_output_no_input_sizes_is_refused_at_load(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OrtError, match=r"output y: dimension 0 \(M\) is open and no input's"):
        Session(model.SerializeToString())
    # Named like the input's batch dimension, the output takes its size.
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1]))
    session = Session(model.SerializeToString())
    out = session.run({"x": Tensor.of_rows([[-1.0], [2.0], [-3.0]], 1)})
    assert out[0].shape == (3, 1)
    assert out[0].column(0) == [0.0, 2.0, 0.0]


def test_the_graphs_declared_shapes_are_read_intact_whatever_freed_memory_holds() -> None:
    """The dimension names live in onnxruntime's type info: they are copied out before it is
    released (glibc's perturb fills freed memory, so reading it after would show)."""
    script = """
from models.runtime import load
for name in ("univariate", "water_system"):
    print(name, load(name).session._shapes)
"""
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.perturb=65"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "univariate [[(None, 0, 0), (1, 0, 0)]]",
        "water_system [[(None, 0, 0), (1, 0, 0)]]",
    ]


def _graph(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: Any = ()) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def test_a_graph_name_that_is_not_utf8_is_refused_as_a_model_error(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("xQ", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    data = _graph([helper.make_node("Relu", ["xQ"], ["y"])], [x], [y]).replace(b"xQ", b"x\xff")
    (tmp_path / "m.onnx").write_bytes(data)
    card = {"file": "m.onnx", "version": "0", "sha256": runtime.sha256_of(data)}
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="a graph name is not UTF-8"):
        load("m", tmp_path)


def test_an_input_passed_through_as_an_output_is_refused_at_load() -> None:
    """onnxruntime would leave the buffer given for that output untouched (zeros)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    data = _graph([helper.make_node("Relu", ["x"], ["y"])], [x], [y, x])
    with pytest.raises(OrtError, match="output x is the graph's input passed through"):
        Session(data)


def test_an_output_of_fixed_size_zero_is_sized_zero() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    empty = helper.make_tensor_value_info("e", TensorProto.FLOAT, [0])
    nothing = helper.make_tensor("nothing", TensorProto.FLOAT, [0], [])
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Constant", [], ["e"], value=nothing),
    ]
    session = Session(_graph(nodes, [x], [y, empty]))
    out = session.run({"x": Tensor.of_rows([[-1.0], [2.0]], 1)})
    assert [(t.shape, t.values.tolist()) for t in out] == [((2, 1), [0.0, 2.0]), ((0,), [])]
