"""The data dir's own files: a failed write leaves the old file and no temporary one behind."""

from __future__ import annotations

import os
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


def test_a_temporary_name_planted_as_a_link_is_never_written_through(tmp_path: Path) -> None:
    """The data dir is the hub user's; root runs the CLI there. A `.tmp` link to a file of root's
    must not make root overwrite it."""
    victim = tmp_path / "victim"
    victim.write_text("root-only content")
    path = tmp_path / "water_system.calibration.json.recalibrate"
    path.with_name(path.name + ".tmp").symlink_to(victim)
    write_json(path, {"requested_at": 1.0})
    assert victim.read_text() == "root-only content"
    assert read_json_object(path) == {"requested_at": 1.0}
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
