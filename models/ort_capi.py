"""onnxruntime sessions through onnxruntime's C API (ctypes): the daemon never imports numpy.

The onnxruntime wheel ships its C library (`onnxruntime/capi/libonnxruntime.so.<version>`) beside
its Python binding. The binding imports numpy, and the two together cost the hub about 16 MiB
more resident memory than the C library alone (`python -m bench.model_memory`), a third of what
the models cost. The C API is ABI-stable by design: `OrtApi` is a table of function pointers that
only ever grows at its end, so the slots below (their order in `onnxruntime_c_api.h`) hold in
every release from `API_VERSION` on, and `OrtGetApiBase()->GetApi(API_VERSION)` refuses a
library older than that.

Only what the hub's models need: a session from the model's bytes (one intra-op and one inter-op
thread, no arena, no memory pattern), float32 tensors in (`Tensor`: an `array('f')` and a shape)
and float32 tensors out. Every error of the library is an `OrtError` carrying its message.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import itertools
import math
import os
import threading
import weakref
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The oldest API version (= onnxruntime minor release, 1.20) whose table this module reads.
API_VERSION = 20

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_SIZE = ctypes.c_size_t
_PSIZE = ctypes.POINTER(ctypes.c_size_t)
_INT = ctypes.c_int
_STATUS = ctypes.c_void_p  # OrtStatus*: NULL is success
_NAMES = ctypes.POINTER(ctypes.c_char_p)

#: name -> (slot in OrtApi, result type, argument types), from onnxruntime_c_api.h.
_SLOTS: dict[str, tuple[int, Any, tuple[Any, ...]]] = {
    "GetErrorCode": (1, _INT, (_P,)),
    "GetErrorMessage": (2, ctypes.c_char_p, (_P,)),
    "CreateEnv": (3, _STATUS, (_INT, ctypes.c_char_p, _PP)),
    "CreateSessionFromArray": (8, _STATUS, (_P, ctypes.c_char_p, _SIZE, _P, _PP)),
    "Run": (9, _STATUS, (_P, _P, _NAMES, _PP, _SIZE, _NAMES, _SIZE, _PP)),
    "CreateSessionOptions": (10, _STATUS, (_PP,)),
    "DisableMemPattern": (17, _STATUS, (_P,)),
    "DisableCpuMemArena": (19, _STATUS, (_P,)),
    "SetIntraOpNumThreads": (24, _STATUS, (_P, _INT)),
    "SetInterOpNumThreads": (25, _STATUS, (_P, _INT)),
    "SessionGetInputCount": (30, _STATUS, (_P, _PSIZE)),
    "SessionGetOutputCount": (31, _STATUS, (_P, _PSIZE)),
    "SessionGetInputTypeInfo": (33, _STATUS, (_P, _SIZE, _PP)),
    "SessionGetOutputTypeInfo": (34, _STATUS, (_P, _SIZE, _PP)),
    "SessionGetInputName": (36, _STATUS, (_P, _SIZE, _P, _PP)),
    "SessionGetOutputName": (37, _STATUS, (_P, _SIZE, _P, _PP)),
    "CreateTensorWithDataAsOrtValue": (
        49,
        _STATUS,
        (_P, _P, _SIZE, ctypes.POINTER(ctypes.c_int64), _SIZE, _INT, _PP),
    ),
    "CastTypeInfoToTensorInfo": (55, _STATUS, (_P, _PP)),
    "GetTensorElementType": (60, _STATUS, (_P, ctypes.POINTER(_INT))),
    "GetDimensionsCount": (61, _STATUS, (_P, _PSIZE)),
    "GetDimensions": (62, _STATUS, (_P, ctypes.POINTER(ctypes.c_int64), _SIZE)),
    "GetSymbolicDimensions": (63, _STATUS, (_P, _NAMES, _SIZE)),
    "CreateCpuMemoryInfo": (69, _STATUS, (_INT, _INT, _PP)),
    "AllocatorFree": (76, _STATUS, (_P, _P)),
    "GetAllocatorWithDefaultOptions": (78, _STATUS, (_PP,)),
    "ReleaseStatus": (93, None, (_P,)),
    "ReleaseSession": (95, None, (_P,)),
    "ReleaseValue": (96, None, (_P,)),
    "ReleaseTypeInfo": (98, None, (_P,)),
    "ReleaseSessionOptions": (100, None, (_P,)),
}
_TABLE_LEN = 1 + max(slot for slot, _, _ in _SLOTS.values())

_FLOAT = 1  # ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
_LOG_WARNING = 2  # ORT_LOGGING_LEVEL_WARNING: what the Python binding logs by default
_DEVICE_ALLOCATOR = 0  # OrtDeviceAllocator
_MEM_DEFAULT = 0  # OrtMemTypeDefault


class OrtError(Exception):
    """onnxruntime cannot be loaded, or refused a call (its own message)."""


@dataclass(frozen=True, slots=True)
class Tensor:
    """A float32 tensor: its values in row-major order and its shape."""

    values: array[float]  # typecode "f"
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.values.typecode != "f":
            raise TypeError(f"a tensor holds float32 ('f'), not {self.values.typecode!r}")
        if min(self.shape, default=0) < 0 or math.prod(self.shape) != len(self.values):
            raise ValueError(f"shape {self.shape} does not hold {len(self.values)} values")

    @classmethod
    def of_rows(cls, rows: Sequence[Sequence[float]], width: int) -> Tensor:
        """The (len(rows), width) tensor of `rows` (`ValueError` unless each has `width`)."""
        if any(len(row) != width for row in rows):
            raise ValueError(f"rows of {width} values expected")
        return cls(array("f", itertools.chain.from_iterable(rows)), (len(rows), width))

    def column(self, j: int) -> list[float]:
        """Column `j` of a 2-D tensor, as Python floats."""
        return self.values[j :: self.shape[1]].tolist()


def library_path() -> Path:
    """onnxruntime's C library inside its installed package (found without importing it: the
    package's `__init__` would load the Python binding, and numpy with it)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise OrtError("onnxruntime is not installed")
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    found = sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("libonnxruntime*.dylib"))
    if not found:
        raise OrtError(f"onnxruntime's C library (libonnxruntime.so) is not in {capi}")
    return found[0]


class _Api:
    """The OrtApi table as callables, the process's one OrtEnv and its CPU memory description."""

    def __init__(self, path: Path) -> None:
        # Recent official onnxruntime builds (1.32 here) collect usage telemetry on Linux too: a
        # device id and an event cache under ~/.cache/Microsoft, for upload to Microsoft. A home
        # hub does not report on its owner: this is the library's full opt-out, read at its start.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise OrtError(f"cannot load onnxruntime's C library {path}: {err}") from err
        lib.OrtGetApiBase.restype = ctypes.POINTER(ctypes.c_void_p * 2)
        base = lib.OrtGetApiBase().contents
        get_api = ctypes.CFUNCTYPE(_P, ctypes.c_uint32)(base[0])
        get_version = ctypes.CFUNCTYPE(ctypes.c_char_p)(base[1])
        self.version = (get_version() or b"?").decode()
        table_at = get_api(API_VERSION)
        if not table_at:
            raise OrtError(
                f"onnxruntime {self.version} is older than the API version {API_VERSION} "
                "this hub needs (onnxruntime 1.20)"
            )
        table = ctypes.cast(table_at, ctypes.POINTER(_P * _TABLE_LEN)).contents
        self._fn: dict[str, Callable[..., Any]] = {}
        for name, (slot, restype, argtypes) in _SLOTS.items():
            at = table[slot]
            if not at:
                raise OrtError(f"onnxruntime {self.version} has no {name} in its C API")
            self._fn[name] = ctypes.CFUNCTYPE(restype, *argtypes)(at)
        self.env = self.out_pointer("CreateEnv", _LOG_WARNING, b"homeguard-hub")
        self.cpu = self.out_pointer("CreateCpuMemoryInfo", _DEVICE_ALLOCATOR, _MEM_DEFAULT)
        self.allocator = self.out_pointer("GetAllocatorWithDefaultOptions")

    def release(self, what: str, handle: int | None) -> None:
        if handle:
            self._fn[f"Release{what}"](handle)

    def call(self, name: str, *args: Any) -> None:
        """Call `name`; a status it returns is raised as `OrtError` (and released)."""
        status = self._fn[name](*args)
        if status:
            message = self._fn["GetErrorMessage"](status) or b""
            code = self._fn["GetErrorCode"](status)
            self._fn["ReleaseStatus"](status)
            raise OrtError(f"{name}: {message.decode(errors='replace')} (error {code})")

    def out_pointer(self, name: str, *args: Any) -> int:
        """Call `name` with an out-pointer as its last argument; what it was set to."""
        out = _P()
        self.call(name, *args, ctypes.byref(out))
        if not out.value:
            raise OrtError(f"{name} gave no result")
        return out.value

    def out_size(self, name: str, *args: Any) -> int:
        out = _SIZE()
        self.call(name, *args, ctypes.byref(out))
        return out.value

    def name(self, getter: str, session: int, index: int) -> str:
        """An input's or output's name (the library allocates it; freed here)."""
        at = self.out_pointer(getter, session, index, self.allocator)
        try:
            raw = ctypes.string_at(at)
        finally:
            self.call("AllocatorFree", self.allocator, at)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise OrtError(f"a graph name is not UTF-8: {raw!r:.60}") from None


_api_lock = threading.Lock()


@functools.cache
def _loaded() -> _Api:
    return _Api(library_path())


def api() -> _Api:
    """The process's onnxruntime (loaded at first use; `OrtError` if it cannot be)."""
    with _api_lock:
        return _loaded()


@dataclass(frozen=True, slots=True)
class _Declared:
    """A graph input's or output's declared element type and shape (-1: open, named `symbols`)."""

    name: str
    element_type: int
    dims: tuple[int, ...]
    symbols: tuple[str, ...]


class Session:
    """One onnxruntime session built from a model's bytes.

    Inputs and outputs are float32. Each output is written straight into a buffer of ours: its
    shape is known before the run, because every dimension the graph leaves open must be named
    like an input's open dimension (the batch, `N`), and takes that input's size (checked at
    load; onnxruntime refuses a run whose output would not fit).
    """

    def __init__(self, model: bytes) -> None:
        ort = api()
        options = ort.out_pointer("CreateSessionOptions")
        try:
            ort.call("SetIntraOpNumThreads", options, 1)
            ort.call("SetInterOpNumThreads", options, 1)
            # Tiny graphs: the default memory arena and pattern planning cost megabytes for nothing.
            ort.call("DisableCpuMemArena", options)
            ort.call("DisableMemPattern", options)
            handle = ort.out_pointer("CreateSessionFromArray", ort.env, model, len(model), options)
        finally:
            ort.release("SessionOptions", options)
        self._handle = handle
        weakref.finalize(self, ort.release, "Session", handle)
        self._ort = ort
        ins = [
            _declared(ort, handle, "Input", i)
            for i in range(ort.out_size("SessionGetInputCount", handle))
        ]
        outs = [
            _declared(ort, handle, "Output", i)
            for i in range(ort.out_size("SessionGetOutputCount", handle))
        ]
        for d in (*ins, *outs):
            if d.element_type != _FLOAT:
                raise OrtError(f"{d.name} is of ONNX element type {d.element_type}, not float32")
        self.inputs = tuple(d.name for d in ins)
        self.outputs = tuple(d.name for d in outs)
        self._shapes = [_output_shape(d, ins) for d in outs]
        self._in_names = (ctypes.c_char_p * len(ins))(*(n.encode() for n in self.inputs))
        self._out_names = (ctypes.c_char_p * len(outs))(*(n.encode() for n in self.outputs))

    def run(self, feeds: Mapping[str, Tensor]) -> list[Tensor]:
        """The session's outputs for `feeds`, one float32 tensor per graph input, by name."""
        if feeds.keys() != set(self.inputs):
            raise OrtError(f"the model takes inputs {list(self.inputs)}, got {list(feeds)}")
        given = [feeds[name] for name in self.inputs]
        results = [
            _zeros(tuple(given[i].shape[a] if fixed is None else fixed for fixed, i, a in shape))
            for shape in self._shapes
        ]
        ort = self._ort
        values = (_P * len(given))()
        outputs = (_P * len(results))()
        try:
            for i, tensor in enumerate(given):
                values[i] = self._wrap(tensor)
            for i, tensor in enumerate(results):
                outputs[i] = self._wrap(tensor)
            ort.call(
                "Run",
                self._handle,
                None,
                self._in_names,
                values,
                len(given),
                self._out_names,
                len(results),
                outputs,
            )
        finally:
            for handle in itertools.chain(values, outputs):
                ort.release("Value", handle)
        return results

    def _wrap(self, tensor: Tensor) -> int:
        """An OrtValue over `tensor`'s own buffer (no copy; the tensor outlives the run)."""
        address, count = tensor.values.buffer_info()
        shape = (ctypes.c_int64 * len(tensor.shape))(*tensor.shape)
        return self._ort.out_pointer(
            "CreateTensorWithDataAsOrtValue",
            self._ort.cpu,
            address,
            count * tensor.values.itemsize,
            shape,
            len(tensor.shape),
            _FLOAT,
        )


def _declared(ort: _Api, session: int, kind: str, index: int) -> _Declared:
    name = ort.name(f"SessionGet{kind}Name", session, index)
    info = ort.out_pointer(f"SessionGet{kind}TypeInfo", session, index)
    try:
        tensor = _P()
        ort.call("CastTypeInfoToTensorInfo", info, ctypes.byref(tensor))
        if not tensor.value:
            raise OrtError(f"{name} is not a tensor")
        element = _INT()
        ort.call("GetTensorElementType", tensor, ctypes.byref(element))
        rank = ort.out_size("GetDimensionsCount", tensor)
        dims = (ctypes.c_int64 * rank)()
        ort.call("GetDimensions", tensor, dims, rank)
        symbols = (ctypes.c_char_p * rank)()
        ort.call("GetSymbolicDimensions", tensor, symbols, rank)
        # Copied out before the release: the names live in the type info's memory.
        named = tuple((s or b"").decode(errors="replace") for s in symbols)
    finally:
        ort.release("TypeInfo", info)
    return _Declared(name, element.value, tuple(dims), named)


#: How to size one dimension of an output at a run: (its fixed size, -, -), or (None, input,
#: axis): that input's size along that axis.
_Sizing = tuple[int | None, int, int]


def _output_shape(out: _Declared, ins: Sequence[_Declared]) -> list[_Sizing]:
    """How to size `out` at a run, dimension by dimension; `OrtError` if an open dimension is
    named like no input's, or if `out` is an input passed through (onnxruntime leaves a buffer
    given for such an output untouched)."""
    if any(given.name == out.name for given in ins):
        raise OrtError(f"output {out.name} is the graph's input passed through")
    plan: list[_Sizing] = []
    for d, (size, symbol) in enumerate(zip(out.dims, out.symbols, strict=True)):
        if size >= 0:
            plan.append((size, 0, 0))
            continue
        found = [
            (i, a)
            for i, given in enumerate(ins)
            for a, (s, name) in enumerate(zip(given.dims, given.symbols, strict=True))
            if s < 0 and name and name == symbol
        ]
        if not found:
            raise OrtError(
                f"output {out.name}: dimension {d} ({symbol or 'unnamed'}) is open and no "
                "input's dimension of that name sizes it"
            )
        plan.append((None, *found[0]))
    return plan


def _zeros(shape: tuple[int, ...]) -> Tensor:
    return Tensor(array("f", bytes(4 * math.prod(shape))), shape)
