"""Where the public anomaly data lives, and how its text files are read.

The project does not vendor NAB or SKAB; the evaluation tools take a path. The data root is the
directory that holds ``nab/`` and ``skab/`` (see ``/work/shared/data/README.md``), found by
`find_data_root` in this order:

1. an explicit path (the ``--data PATH`` argument of ``python -m bench.anomaly``);
2. the environment variable ``HOMEGUARD_DATA``;
3. ``<repository>/../shared/data`` when it exists, else ``/work/shared/data`` (where a clone in
   another directory of the build machine still finds it).

Parsing uses only the standard library and numpy: timestamps become float POSIX seconds, read as
UTC wall-clock time (the files carry no zone; only differences between timestamps matter).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ENV_VAR",
    "DataNotFoundError",
    "find_data_root",
    "parse_timestamps",
]

ENV_VAR = "HOMEGUARD_DATA"
_REPO = Path(__file__).resolve().parents[2]
_FALLBACKS = (_REPO.parent / "shared" / "data", Path("/work/shared/data"))


class DataNotFoundError(FileNotFoundError):
    """No directory holding the public data (``nab/`` and/or ``skab/``) could be found."""


def _looks_like_root(path: Path) -> bool:
    return (path / "nab").is_dir() or (path / "skab").is_dir()


def find_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root: `explicit`, else ``$HOMEGUARD_DATA``, else ``<repo>/../shared/data``.

    An explicit path or a set environment variable that does not hold ``nab/`` or ``skab/`` is an
    error (it is not silently replaced by the fallback).
    """
    for origin, raw in (("--data", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if raw is None or str(raw) == "":
            continue
        path = Path(raw).expanduser()
        if not _looks_like_root(path):
            raise DataNotFoundError(f"{origin}={path} holds neither nab/ nor skab/")
        return path
    for fallback in _FALLBACKS:
        if _looks_like_root(fallback):
            return fallback
    raise DataNotFoundError(
        f"public data not found: pass --data PATH or set {ENV_VAR} to the directory holding "
        f"nab/ and skab/ (looked in {', '.join(map(str, _FALLBACKS))})"
    )


def parse_timestamps(texts: Sequence[str]) -> NDArray[np.float64]:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` strings to float POSIX seconds (naive times read as UTC)."""
    micros = np.array(texts, dtype="datetime64[us]").astype(np.int64)
    return micros.astype(np.float64) / 1e6
