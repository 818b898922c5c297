"""Files the hub keeps for itself in its data dir, written so that a crash or a power cut leaves the
old version or the new one, never a torn one (a temporary file beside it, fsync, rename over it,
fsync of the directory), and read back with a reason for whatever is not what was written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeGuard


def write_json(path: Path, data: Any) -> None:
    """`data` as compact JSON at `path` (parents made as needed); `OSError` if it cannot be."""
    write_text(path, json.dumps(data, separators=(",", ":")))


def write_text(path: Path, text: str) -> None:
    """`text` at `path` (mode 0640), in one write (which releases the GIL for its whole length;
    many small writes from a worker thread held the event loop up for tens of milliseconds). A
    write that fails (a full disk) removes its temporary file: the space goes back to the
    incidents' store."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    try:
        # Never through a link: the data dir belongs to the hub's user, and root runs the CLI
        # there (a `.tmp` symlink planted by that user would make root overwrite its target).
        # An old temporary file (a crash mid-write) is removed first; O_EXCL refuses anything
        # that appears in its place meanwhile.
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object at `path`; `ValueError` saying why it is not one (`OSError` if unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON ({err})") from None
    except RecursionError as err:
        raise ValueError(f"nested too deeply ({err})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def is_json_number(value: object) -> TypeGuard[int | float]:
    """Whether a value read from JSON is a number (an int or a float; a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_number(value: object) -> float | None:
    """A number read from JSON as a float (NaN and infinities included: Python's json reads and
    writes them); `None` for anything else: not a number (a bool is not one), or an integer no
    float holds (JSON's integers have no bound: `float(10**400)` raises `OverflowError`)."""
    if not is_json_number(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None
