"""Where the tests of `bench.anomaly` find the public NAB / SKAB data (never vendored).

`data_root()` skips the calling test when the data is absent: the one allowed skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.anomaly.data import DataNotFoundError, find_data_root


def data_root(sub: str) -> Path:
    """``<data root>/<sub>``, or skip: ``--data`` is not available to pytest, so
    ``$HOMEGUARD_DATA`` or ``<repo>/../shared/data`` must hold it."""
    try:
        path = find_data_root() / sub
    except DataNotFoundError as err:
        pytest.skip(
            f"public data not found: set HOMEGUARD_DATA to the directory holding nab/ and skab/ ({err})"
        )
    if not path.is_dir():
        pytest.skip(f"public data not found: set HOMEGUARD_DATA to a directory holding {sub}/")
    return path
