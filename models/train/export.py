"""Write small dense networks as ONNX graphs (Gemm + Relu), with no converter dependency, and
the cards beside the model files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.runtime import MODELS_DIR, sha256_of

OPSET = 17
IR_VERSION = 9

Layer = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def write_mlp(path: Path, layers: list[Layer], *, n_inputs: int, input_name: str, doc: str) -> None:
    """An MLP with ReLU between layers (none after the last) as a deterministic ONNX file.

    `layers` are `(weights (in, out), bias (out,))` as scikit-learn's `coefs_` / `intercepts_`.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = []
    inits = []
    prev = input_name
    for i, (w, b) in enumerate(layers):
        wn, bn, out = f"W{i}", f"B{i}", f"h{i}"
        inits.append(numpy_helper.from_array(np.asarray(w, dtype=np.float32), wn))
        inits.append(numpy_helper.from_array(np.asarray(b, dtype=np.float32), bn))
        nodes.append(helper.make_node("Gemm", [prev, wn, bn], [out], name=f"dense{i}"))
        prev = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    n_out = int(np.asarray(layers[-1][1]).size)
    nodes.append(helper.make_node("Identity", [prev], ["output"], name="output"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_out])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="homeguard-hub models.train",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def write_card(name: str, card: dict[str, Any], directory: Path = MODELS_DIR) -> None:
    data = (directory / f"{name}.onnx").read_bytes()
    full = {
        "name": name,
        "file": f"{name}.onnx",
        "sha256": sha256_of(data),
        "size_bytes": len(data),
        "onnx_opset": OPSET,
        "onnx_ir_version": IR_VERSION,
        **card,
    }
    (directory / f"{name}.card.json").write_text(json.dumps(full, indent=2) + "\n")
