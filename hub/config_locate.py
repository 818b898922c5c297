"""Find the line of a key in TOML text, so config errors can say where to look.

A light scanner, not a parser (the file has already parsed): it follows `[table]` and
`[[array]]` headers and `key = value` lines, which is how configuration files are written.
"""

from __future__ import annotations

import re
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"]+(?:\s*\.\s*[A-Za-z0-9_\-\"]+)*)\s*=")


def locate_key(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the key at `loc` (e.g. `("devices", 2, "adapter")`), or of its table."""
    if not text:
        return None
    want = tuple(loc)
    array_counts: dict[tuple[str, ...], int] = {}
    table: tuple[Any, ...] = ()
    best: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            names = tuple(p.strip().strip('"') for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = array_counts.get(names, -1) + 1
                array_counts[names] = index
                table = (*names, index)
            else:
                table = names
            if want[: len(table)] == table and len(table) == len(want):
                return number
            if want[: len(table)] == table:
                best = number
            continue
        key = _KEY.match(raw)
        if key:
            parts = tuple(p.strip().strip('"') for p in key.group(1).split("."))
            full = table + parts
            if full == want[: len(full)]:
                return number
    return best
