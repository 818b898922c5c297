"""Read a CSV of timestamped numeric columns (parsing only: text in, arrays out).

The first column is the timestamp: POSIX seconds (milliseconds when larger than 1e11) or an ISO
8601 date-time (one without a zone is read as UTC). The other columns are numbers; an empty or
unparseable cell is NaN. The delimiter is detected among `,` `;` tab and `|`; when it is not `,`,
a number may have a decimal comma (`20,129`, as a European spreadsheet writes it). A first row
whose value cells are not numbers is the header; without one, columns are named by position
(`1`, `2`...).

Refused with `CsvError` naming the line: a file the csv module cannot read (a cell past its size
limit), a cell running over several lines (a quote opened and never closed would otherwise eat
the rest of the file), and a file in which no timestamp cell is a time.
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
#: What `parse_timestamp` reads, for the messages.
TIMESTAMP_FORMATS = "POSIX seconds or milliseconds, or ISO 8601 like 2023-11-14T22:13:20 (UTC unless a zone is given)"


class CsvError(ValueError):
    """The text is not a table this reader can score."""


@dataclass(frozen=True, slots=True)
class Table:
    stamps: list[str]  # the timestamp cells as written
    timestamps: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]  # (rows, columns)
    columns: list[str]
    lines: list[int]  # the line (1-based) each row starts on


def _number(cell: str, decimal_comma: bool = False) -> float:
    try:
        return float(cell)
    except ValueError:
        pass
    if decimal_comma and cell.count(",") == 1 and "." not in cell:
        try:
            return float(cell.replace(",", "."))
        except ValueError:
            pass
    return math.nan


def parse_timestamp(cell: str, decimal_comma: bool = False) -> float:
    """POSIX seconds from a timestamp cell; NaN when it is neither a number nor ISO 8601.

    `decimal_comma`: a number may be written `1700000000,5`."""
    cell = cell.strip()
    value = _number(cell, decimal_comma)
    if not math.isnan(value):
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
        found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        found = max(_DELIMITERS, key=first.count)
    if found == ",":
        # `2023-11-14T22:13:20;20,129;5,5` splits as evenly on `,` as on `;` (the sniffer then
        # prefers `,`): a decimal comma. The delimiter is the one that leaves a time first.
        lines = [line for line in sample.splitlines()[:2] if line.strip()]
        for other in _DELIMITERS[1:]:
            if any(
                other in line
                and math.isnan(parse_timestamp(line.split(",")[0]))
                and not math.isnan(parse_timestamp(line.split(other)[0], decimal_comma=True))
                for line in lines
            ):
                return other
    return found


def _rows(text: str, delimiter: str) -> tuple[list[list[str]], list[int]]:
    """The non-empty rows of `text` and the line each starts on; `CsvError` naming the line when
    the csv module refuses the text or a cell runs over several lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise CsvError(f"line {start}: {err} (a quote there not closed?)") from err
        end = reader.line_num
        if any("\n" in cell or "\r" in cell for cell in row):
            raise CsvError(
                f"line {start}: a quoted cell opened there runs on to line {end} (a quote not "
                "closed? a cell may not hold a line break)"
            )
        if row:
            rows.append(row)
            lines.append(start)
    return rows, lines


def read_table(text: str, columns: list[str] | None = None) -> Table:
    """Parse `text`; `columns` picks value columns by header name or 1-based position."""
    if not text.strip():
        raise CsvError("empty input")
    delimiter = _delimiter(text[:4096])
    comma = delimiter != ","
    rows, lines = _rows(text, delimiter)
    if not rows:
        raise CsvError("empty input")
    if len(rows[0]) < 2:
        raise CsvError("need a timestamp column and at least one value column")
    first = rows[0]
    has_header = any(math.isnan(_number(c, comma)) for c in first[1:] if c.strip())
    names = [c.strip() for c in first[1:]] if has_header else [str(i) for i in range(1, len(first))]
    body = rows[1:] if has_header else rows
    body_lines = lines[1:] if has_header else lines
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
        ts[i] = parse_timestamp(row[0], comma)
        for j, col in enumerate(picks):
            values[i, j] = _number(row[col + 1], comma)
    if body and not np.isfinite(ts).any():
        raise CsvError(
            f"line {body_lines[0]}: {body[0][0]!r} is not a time, nor is any timestamp "
            f"(first column) of the file; accepted: {TIMESTAMP_FORMATS}"
        )
    return Table(stamps, ts, values, [names[p] for p in picks], body_lines)
