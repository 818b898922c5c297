"""The little linear algebra the water-system calibration needs, on lists (the daemon has no numpy).

Columns are lists of floats (one per variable); matrices are lists of rows. Sizes are the water
model's (at most 8 variables, at most `water.MAX_STRETCH_ROWS` observations), so plain Python
costs a few milliseconds once per calibration.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation of the finite `values` (NaN, NaN when none)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = math.fsum(finite) / len(finite)
    deviations = [v - mean for v in finite]  # d * d: inf past 1e154, where ** raises
    return mean, math.sqrt(math.fsum(d * d for d in deviations) / len(finite))


def covariance(columns: Sequence[Sequence[float]]) -> list[list[float]]:
    """The sample covariance matrix (n - 1 in the denominator) of equally long `columns`."""
    n = len(columns[0])
    means = [math.fsum(c) / n for c in columns]
    centred = [[v - m for v in c] for c, m in zip(columns, means, strict=True)]
    k = len(centred)
    cov = [[0.0] * k for _ in range(k)]
    for a in range(k):
        for b in range(a, k):
            cov[a][b] = cov[b][a] = math.fsum(map(operator.mul, centred[a], centred[b])) / (n - 1)
    return cov


def inverse(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    """The inverse of a square matrix (Gauss-Jordan with partial pivoting); `ValueError` if it is
    singular."""
    k = len(matrix)
    work = [
        [*map(float, row), *(1.0 if i == j else 0.0 for j in range(k))]
        for i, row in enumerate(matrix)
    ]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(work[r][col]))
        if work[pivot][col] == 0.0:
            raise ValueError("the matrix is singular")
        work[col], work[pivot] = work[pivot], work[col]
        lead = work[col][col]
        work[col] = [v / lead for v in work[col]]
        for r in range(k):
            if r != col and work[r][col] != 0.0:
                factor = work[r][col]
                work[r] = [v - factor * p for v, p in zip(work[r], work[col], strict=True)]
    return [row[k:] for row in work]
