"""Read a CSV of timestamped numeric columns (parsing only: text in, arrays out).

The first column is the timestamp: POSIX seconds (milliseconds when larger than 1e11) or an ISO
8601 date-time (one without a zone is read as UTC). The other columns are numbers; an empty or
unparseable cell is NaN. The delimiter is detected among `,` `;` tab and `|`. A first row whose
value cells are not numbers is the header; without one, columns are named by position (`1`, `2`...).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

_DELIMITERS = ",;\t|"


class CsvError(ValueError):
    """The text is not a table this reader can score."""


@dataclass(frozen=True, slots=True)
class Table:
    stamps: list[str]  # the timestamp cells as written
    timestamps: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]  # (rows, columns)
    columns: list[str]


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def parse_timestamp(cell: str) -> float:
    """POSIX seconds from a timestamp cell; NaN when it is neither a number nor ISO 8601."""
    cell = cell.strip()
    try:
        value = float(cell)
    except ValueError:
        pass
    else:
        return value / 1000.0 if abs(value) > 1e11 else value
    try:
        when = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(_DELIMITERS, key=first.count)


def read_table(text: str, columns: list[str] | None = None) -> Table:
    """Parse `text`; `columns` picks value columns by header name or 1-based position."""
    if not text.strip():
        raise CsvError("empty input")
    delimiter = _delimiter(text[:4096])
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
    if len(rows[0]) < 2:
        raise CsvError("need a timestamp column and at least one value column")
    first = rows[0]
    has_header = any(math.isnan(_number(c)) for c in first[1:] if c.strip())
    names = [c.strip() for c in first[1:]] if has_header else [str(i) for i in range(1, len(first))]
    body = rows[1:] if has_header else rows
    if columns:
        picks = []
        for name in columns:
            if name in names:
                picks.append(names.index(name))
            elif name.isdigit() and 1 <= int(name) <= len(names):
                picks.append(int(name) - 1)
            else:
                raise CsvError(f"no column {name!r} (columns: {', '.join(names)})")
    else:
        picks = list(range(len(names)))
    width = len(names) + 1
    values = np.full((len(body), len(picks)), np.nan)
    stamps: list[str] = []
    ts = np.empty(len(body))
    for i, cells in enumerate(body):
        row = cells + [""] * (width - len(cells))
        stamps.append(row[0])
        ts[i] = parse_timestamp(row[0])
        for j, col in enumerate(picks):
            values[i, j] = _number(row[col + 1])
    return Table(stamps, ts, values, [names[p] for p in picks])
