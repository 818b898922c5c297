"""The data dir's own files: a failed write leaves the old file and no temporary one behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hub.atomic_file import read_json_object, write_json

# A file-size limit makes write() fail partway with EFBIG, as a full disk fails it with ENOSPC;
# set in a child so that the limit cannot touch the test process's own files.
_WRITE_PAST_LIMIT = """
import resource, signal, sys
from pathlib import Path
from hub.atomic_file import write_text
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
try:
    write_text(Path(sys.argv[1]), "x" * 1_000_000)
except OSError as err:
    print(err.errno)
"""


def test_a_write_that_fails_partway_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "anomaly_streams.json"
    write_json(path, {"kept": 1})
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_PAST_LIMIT, str(path)],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "27"  # EFBIG: the write really failed
    assert read_json_object(path) == {"kept": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anomaly_streams.json"]


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "water_system.calibration.json"
    write_json(path, {"a": [1, 2]})
    write_json(path, {"b": 3})
    assert read_json_object(path) == {"b": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
