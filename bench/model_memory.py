"""What the anomaly models cost in memory, beside what onnxruntime costs by itself.

    python -m bench.model_memory [--streams 500] [--readings 400]

Each target runs in a fresh Python process that reads its own /proc/self/status before and
after; the figures are the growth (VmRSS, and its anonymous and file-backed parts):

* `C API floor`: onnxruntime's C library (`models.ort_capi`, as the hub loads it) and one session
  of a one-node graph (Relu), one intra-op and one inter-op thread, run once: what any use of
  onnxruntime costs here.
* `Python binding floor`: the same through onnxruntime's Python binding (`import numpy,
  onnxruntime`): what the hub saves by not using it.
* `models`: both shipped models loaded (checksums verified) the way the daemon loads them, and
  `--streams` univariate streams each fed `--readings` readings in batches, as the daemon does.

* `models, code paged out` (with `--page-out`): as `models`, then `madvise(MADV_PAGEOUT)` on
  onnxruntime's executable mappings, then `--readings` more readings: what is left
  resident once scoring has faulted back the code it uses. Measured to document why the hub does
  not do it (README, "Performance"): the pages are clean and reclaimable anyway.

The hub's own figure (as shipped against `[anomaly] enabled = false`) is in `bench.footprint`;
it is a little lower than `models` here, because the hub has some of the shared libraries mapped
already (libstdc++, libcrypto).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import REPO, mib, ratio, table

# Not `bench._common.proc_status_bytes`: importing bench._common (paho, the test broker) in the
# child would be counted as the models' memory.
_STATUS = """
def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out
before = status()
"""

_FLOOR = """
from array import array
from models.ort_capi import Session, Tensor
session = Session(MODEL)
session.run({"x": Tensor(array("f", [0.0] * 4), (4, 1))})
"""

_BINDING_FLOOR = """
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
session.run(None, {"x": np.zeros((4, 1), dtype=np.float32)})
"""

_MODELS = """
import math
from models.runtime import load
from models.univariate import StreamState, UnivariateDetector
from models.water import WaterDetector
uni = UnivariateDetector(load("univariate"))
WaterDetector(load("water_system"))
states = [StreamState() for _ in range(STREAMS)]
for r in range(READINGS):
    uni.score_batch([(s, 60.0 * r, 20.0 + math.sin(r / 30.0 + i)) for i, s in enumerate(states)])
"""

_PAGE_OUT = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_PAGEOUT = 21
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split()
        if len(parts) > 5 and parts[1] == "r-xp" and "onnxruntime" in parts[5]:
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if libc.madvise(lo, hi - lo, MADV_PAGEOUT):
                raise OSError(ctypes.get_errno(), "madvise(MADV_PAGEOUT)")
for r in range(READINGS, 2 * READINGS):
    uni.score_batch([(s, 60.0 * r, 20.0 + math.sin(r / 30.0 + i)) for i, s in enumerate(states)])
"""

_REPORT = """
after = status()
print(json.dumps({k: after[k] - before[k] for k in before}))
"""


def _relu_model() -> bytes:
    """A one-node ONNX graph (needs the `onnx` package of the dev extra; the child does not)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "floor", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def measure(body: str, **constants: object) -> dict[str, int]:
    """The growth of a fresh interpreter's memory over `body` (run with `constants` defined)."""
    head = "import json\n" + "".join(f"{k} = {v!r}\n" for k, v in constants.items())
    code = head + _STATUS + body + _REPORT
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"},  # as the hub runs it (models.ort_capi)
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model_memory", description=__doc__)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--readings", type=int, default=400)
    parser.add_argument(
        "--page-out",
        action="store_true",
        help="also measure the models with the libraries' code paged out (Linux 5.4+)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relu.onnx"
        path.write_bytes(_relu_model())
        model = f"MODEL = open({str(path)!r}, 'rb').read()\n"
        floor = measure(model + _FLOOR)
        binding = measure(model + _BINDING_FLOOR)
    ours = measure(_MODELS, STREAMS=args.streams, READINGS=args.readings)
    paged = (
        measure(_MODELS + _PAGE_OUT, STREAMS=args.streams, READINGS=args.readings)
        if args.page_out
        else None
    )
    rows = [
        [
            key,
            f"{mib(floor[key]):.1f}",
            f"{mib(binding[key]):.1f}",
            f"{mib(ours[key]):.1f}",
            f"{ratio(ours[key], floor[key]):.2f}",
            *([] if paged is None else [f"{mib(paged[key]):.1f}"]),
        ]
        for key in ("VmRSS", "RssAnon", "RssFile")
    ]
    print(
        f"memory added over a bare interpreter (MiB); models: both loaded, "
        f"{args.streams} univariate streams x {args.readings} readings"
    )
    head = ["", "C API floor", "Python binding floor", "models", "models / C API floor"]
    print(table(head + ([] if paged is None else ["models, code paged out"]), rows))


if __name__ == "__main__":
    main()
