"""`homeguard-hub models info|score` and the CSV reader behind `score`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hub.cli import main
from models.csv_input import CsvError, read_table
from models.detect import score_table
from models.train import synthetic
from models.water import COLUMNS


def _write_stream(path: Path, n: int = 800) -> synthetic.Stream:
    s = synthetic.make_stream("humidity", n, np.random.default_rng(4))
    lines = ["timestamp,value"] + [
        f"{t:.3f},{x!r}" for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return s


def test_score_prints_what_score_table_computes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _write_stream(tmp_path / "h.csv")
    assert main(["models", "score", str(tmp_path / "h.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "timestamp,anomaly_score,is_anomaly"
    assert len(lines) == s.x.size + 1
    expected = score_table("univariate", np.round(s.t, 3), s.x.reshape(-1, 1))
    got = [line.split(",") for line in lines[1:]]
    np.testing.assert_allclose([float(g[1]) for g in got], expected.scores, atol=1e-6)
    assert [g[2] == "1" for g in got] == expected.is_anomaly.tolist()


def test_score_semicolons_iso_times_columns_and_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    header = "datetime;" + ";".join(COLUMNS) + ";anomaly"
    rows = [
        f"2020-03-09 10:{i // 60:02d}:{i % 60:02d};"
        + ";".join(f"{v:.4f}" for v in rng.normal(10, 1, 8))
        + ";0"
        for i in range(500)
    ]
    (tmp_path / "pump.csv").write_text("\n".join([header, *rows]) + "\n")
    code = main(
        [
            "models",
            "score",
            str(tmp_path / "pump.csv"),
            "--columns",
            ",".join(COLUMNS),
            "--calibrate-rows",
            "100",
            "--model",
            "water_system",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("2020-03-09 10:00:00,0.000000,0")
    assert len(lines) == 501
    assert all(float(line.split(",")[1]) == 0.0 for line in lines[1:101])
    assert any(float(line.split(",")[1]) > 0.0 for line in lines[101:])


def test_info_lists_models_and_their_cards(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cards] == ["univariate", "water_system"]
    assert all(c["usable"] and c["problem"] is None for c in cards)
    assert main(["models", "info"]) == 0
    assert "univariate" in capsys.readouterr().out


def test_score_refuses_a_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_stream(tmp_path / "h.csv", n=10)
    assert main(["models", "score", str(tmp_path / "h.csv"), "--columns", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_reader_detects_delimiter_header_and_bad_cells() -> None:
    table = read_table("1700000000\t1.5\t2\n1700000060\t\tx\n1700000120000\t3\t4\n")
    assert table.columns == ["1", "2"]
    assert table.timestamps.tolist() == [1.7e9, 1.7e9 + 60, 1.7e9 + 120]  # the last in ms
    assert math.isnan(table.values[1, 0])
    assert math.isnan(table.values[1, 1])
    picked = read_table("ts|a|b\n2024-01-01T00:00:00Z|1|2\n", ["b"])
    assert picked.columns == ["b"]
    assert picked.values.tolist() == [[2.0]]
    assert picked.timestamps.tolist() == [1704067200.0]
    assert read_table("t,v\n2024-01-01 00:00:00,1\n", ["1"]).values.tolist() == [[1.0]]


def test_reader_refuses_what_it_cannot_score() -> None:
    with pytest.raises(CsvError):
        read_table("")
    with pytest.raises(CsvError):
        read_table("justonecolumn\n1\n")
