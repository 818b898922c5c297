"""`models score` on the files people really have: rows it cannot score are counted and said,
European CSVs are read, broken quoting and unreadable times are refused naming the line, huge
values are refused like NaN, and a negative calibration stretch is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hub.cli import main
from models.csv_input import CsvError, read_table
from models.detect import Refusal, score_table
from models.features import MAX_MAGNITUDE, UnivariateFeatures, refusal
from models.train import synthetic
from models.water import COLUMNS

N = 1000


def _stream(n: int = N) -> tuple[list[float], list[float]]:
    s = synthetic.make_stream("humidity", n, np.random.default_rng(4))
    return [round(t, 3) for t in s.t.tolist()], s.x.tolist()


def _csv(path: Path, rows: list[tuple[str, str]], sep: str = ",") -> str:
    path.write_text("\n".join([f"timestamp{sep}value"] + [f"{t}{sep}{v}" for t, v in rows]) + "\n")
    return str(path)


def _score(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[list[str]], str]:
    code = main(["models", "score", *args])
    out, err = capsys.readouterr()
    return code, [line.split(",") for line in out.splitlines()[1:]], err


# -- rows not scored are said (they score 0) ---------------------------------------------------


def test_a_newest_first_file_says_its_rows_are_not_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream()
    rows = [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)]
    code, out, err = _score(capsys, _csv(tmp_path / "c.csv", rows))
    assert (code, len(out), err) == (0, N, "")  # a clean file: nothing to say
    code, out, err = _score(capsys, _csv(tmp_path / "r.csv", rows[::-1]))
    assert code == 0
    assert len(out) == N
    assert err.count("\n") == 1
    assert f"models score: 999 of {N:,} rows not scored (they score 0): 999 earlier than a row" in (
        err
    )
    assert "(first: line 3; the scorer is causal: sort the file by time)" in err


def test_one_future_timestamp_is_named_by_the_rows_it_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream()
    rows = [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)]
    rows[600] = (repr(ts[600] + 10 * 365 * 86400.0), rows[600][1])  # a mistyped year
    code, out, err = _score(capsys, _csv(tmp_path / "f.csv", rows))
    assert code == 0
    assert "399 of 1,000 rows not scored" in err
    assert "399 earlier than a row before them (first: line 603;" in err  # after line 602
    assert all(float(line[1]) == 0.0 for line in out[601:])


def test_unreadable_times_and_values_are_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream()
    rows = [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)]
    rows[10] = ("11/14/2023 22:13:20", rows[10][1])
    rows[20] = (rows[20][0], "nan")
    rows[21] = (rows[21][0], "n/a")
    rows[22] = (rows[22][0], "")
    code, _, err = _score(capsys, _csv(tmp_path / "m.csv", rows))
    assert code == 0
    assert "4 of 1,000 rows not scored (they score 0): 1 with a timestamp that is not a time" in err
    assert "(first: line 12; accepted: POSIX seconds or milliseconds, or ISO 8601" in err
    assert "3 with no number (empty, unreadable, NaN or infinite) (first: line 22)" in err


def test_a_file_of_which_no_row_can_be_scored_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, _ = _stream(50)
    code, out, err = _score(capsys, _csv(tmp_path / "e.csv", [(repr(t), "x") for t in ts]))
    assert code == 2
    assert out == []
    assert "no row can be scored: 50 of 50 rows not scored" in err
    assert "with no number" in err
    code, out, err = _score(capsys, _csv(tmp_path / "h.csv", []))
    assert (code, out) == (2, [])
    assert "no rows to score" in err


def _pump_rows(n: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [
        f"{1_700_000_000 + i};" + ";".join(f"{v:.4f}" for v in rng.normal(10, 1, 8))
        for i in range(n)
    ]


def test_water_system_rows_out_of_order_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _pump_rows(300)
    rows[200:] = rows[200:][::-1]
    (tmp_path / "p.csv").write_text("\n".join(["t;" + ";".join(COLUMNS), *rows]) + "\n")
    code, out, err = _score(
        capsys, str(tmp_path / "p.csv"), "--model", "water_system", "--calibrate-rows", "100"
    )
    assert code == 0
    assert len(out) == 300
    assert "99 of 300 rows not scored (they score 0): 99 earlier than a row before them" in err


def test_score_table_counts_what_its_detector_refused() -> None:
    t = np.array([1.0, 2.0, math.nan, 3.0, 2.5, 4.0, 5.0, 6.0])
    x = np.array([1.0, math.inf, 1.0, 1.0, 1.0, 2e15, math.nan, 1.0]).reshape(-1, 1)
    result = score_table("univariate", t, x)
    assert [(r.reason, r.rows, r.first) for r in result.refused] == [
        (Refusal.TIME_UNREADABLE, 1, 2),
        (Refusal.EARLIER, 1, 4),
        (Refusal.NO_VALUE, 2, 1),
        (Refusal.TOO_LARGE, 1, 5),
    ]
    assert result.scored == 3


# -- European CSVs -------------------------------------------------------------------------------


def test_a_semicolon_file_with_decimal_commas_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream()
    rows = [(repr(t), f"{x:.3f}".replace(".", ",")) for t, x in zip(ts, xs, strict=True)]
    code, out, err = _score(capsys, _csv(tmp_path / "eu.csv", rows, sep=";"))
    assert (code, err) == (0, "")
    expected = score_table("univariate", np.array(ts), np.round(np.array(xs), 3).reshape(-1, 1))
    np.testing.assert_allclose([float(line[1]) for line in out], expected.scores, atol=1e-6)
    assert expected.scores.max() > 0


def test_decimal_commas_in_the_reader() -> None:
    table = read_table("t;a;b\n2023-11-14T22:13:20;20,129;-1,5e3\n2023-11-14T22:14:20;1.5;x,y\n")
    assert table.columns == ["a", "b"]
    assert table.values[0].tolist() == [20.129, -1500.0]
    assert table.values[1, 0] == 1.5
    assert math.isnan(table.values[1, 1])
    headless = read_table("2023-11-14T22:13:20;20,5;3\n2023-11-14T22:14:20;21,5;4\n")
    assert headless.columns == ["1", "2"]  # the first row is data, not a header
    assert headless.values.tolist() == [[20.5, 3.0], [21.5, 4.0]]
    one = read_table("2023-11-14T22:13:20;20,5\n2023-11-14T22:14:20;21,5\n")  # `,` as often as `;`
    assert one.values.tolist() == [[20.5], [21.5]]
    tabs = read_table("t\tv\n1700000000,5\t2,25\n")
    assert tabs.timestamps.tolist() == [1_700_000_000.5]
    assert tabs.values.tolist() == [[2.25]]
    commas = read_table("t,v\n1700000000,2\n")  # with `,` as the delimiter, no decimal comma
    assert commas.values.tolist() == [[2.0]]


def test_a_file_with_no_readable_time_is_refused_naming_the_first_cell() -> None:
    with pytest.raises(CsvError) as caught:
        read_table("timestamp,value\n11/14/2023 22:13:20,1\n11/14/2023 22:14:20,2\n")
    message = str(caught.value)
    assert message.startswith("line 2: '11/14/2023 22:13:20' is not a time")
    assert "POSIX seconds or milliseconds, or ISO 8601" in message


# -- quoting ------------------------------------------------------------------------------------


def test_a_stray_quote_is_refused_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream(3000)
    rows = [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)]
    rows[4] = (rows[4][0], '"' + rows[4][1])
    code, out, err = _score(capsys, _csv(tmp_path / "q.csv", rows))
    assert (code, out) == (2, [])
    assert "line 6: a quoted cell opened there runs on to line 3001" in err


def test_a_cell_past_the_csv_limit_is_refused_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(
        tmp_path / "b.csv", [("1700000000", '"' + "x" * 200_000 + '"'), ("1700000060", "1")]
    )
    code, out, err = _score(capsys, path)
    assert (code, out) == (2, [])
    assert "line 2: field larger than field limit" in err
    with pytest.raises(CsvError, match="line 2: "):
        read_table('t,v\n1,"2\n3,4\n')


def test_quoted_cells_on_one_line_are_still_read() -> None:
    table = read_table('"t","v"\n"1700000000","1.5"\n\n1700000060,2\n')
    assert table.values.tolist() == [[1.5], [2.0]]
    assert table.lines == [2, 4]


# -- huge values --------------------------------------------------------------------------------


@pytest.mark.parametrize("huge", [1.5e308, -1.5e308, 1e200, 1e16])
def test_a_huge_value_is_refused_like_nan_and_the_stream_scores_on(huge: float) -> None:
    rng = np.random.default_rng(3)
    t = 1.7e9 + 60.0 * np.arange(3000)
    x = 20 + 2 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.1, t.size)
    x[2000:] += 3.0  # a level shift after the glitch
    glitch, missing = x.copy(), x.copy()
    glitch[1500] = huge
    glitch[1501] = -huge
    missing[1500:1502] = math.nan
    got = score_table("univariate", t, glitch.reshape(-1, 1))
    want = score_table("univariate", t, missing.reshape(-1, 1))
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.sustained, want.sustained)
    assert got.scores[2000:].max() >= got.threshold  # it still detects
    assert [(r.reason, r.rows) for r in got.refused] == [(Refusal.TOO_LARGE, 2)]


def test_huge_values_in_the_cli_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream()
    rows = [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)]
    rows[500] = (rows[500][0], "1.5e308")
    rows[501] = (rows[501][0], "-1.5e308")
    code, out, err = _score(capsys, _csv(tmp_path / "h.csv", rows))
    assert (code, len(out)) == (0, N)
    assert "2 of 1,000 rows not scored (they score 0): 2 with a value beyond ±1e15" in err


def test_the_bound_is_the_features_own() -> None:
    feats = UnivariateFeatures()
    assert feats.accepts(1.0, MAX_MAGNITUDE)
    assert feats.accepts(1.0, -MAX_MAGNITUDE)
    assert not feats.accepts(1.0, MAX_MAGNITUDE * 1.01)
    assert refusal(1.0, -1e300, -math.inf) is Refusal.TOO_LARGE
    assert refusal(1.0, MAX_MAGNITUDE, -math.inf) is None


def test_a_huge_value_in_a_water_system_row_is_a_missing_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    ts = 1_700_000_000.0 + np.arange(600.0)
    values = rng.normal(10, 1, (600, 8))
    glitch, missing = values.copy(), values.copy()
    glitch[300, 3] = 1e200
    glitch[310, 5] = -1.5e308
    missing[300, 3] = missing[310, 5] = math.nan
    got = score_table("water_system", ts, glitch, calibrate_rows=200)
    want = score_table("water_system", ts, missing, calibrate_rows=200)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert (got.refused, got.ignored_values) == ((), 2)
    lines = ["t," + ",".join(COLUMNS)] + [
        f"{t!r}," + ",".join(repr(v) for v in row)
        for t, row in zip(ts.tolist(), glitch.tolist(), strict=True)
    ]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    code, out, err = _score(
        capsys, str(tmp_path / "w.csv"), "--model", "water_system", "--calibrate-rows", "200"
    )
    assert (code, len(out)) == (0, 600)
    assert "models score: 2 values beyond ±1e15 read as missing" in err


# -- the calibration stretch ----------------------------------------------------------------


def test_a_negative_calibration_stretch_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, xs = _stream(10)
    path = _csv(tmp_path / "n.csv", [(repr(t), repr(x)) for t, x in zip(ts, xs, strict=True)])
    with pytest.raises(SystemExit) as caught:
        main(["models", "score", path, "--calibrate-rows", "-5"])
    assert caught.value.code == 2
    assert "--calibrate-rows: must be 0 or more, got -5" in capsys.readouterr().err
    for model, width in (("univariate", 1), ("water_system", 8)):
        with pytest.raises(ValueError, match="calibrate_rows must be 0 or more, got -1"):
            score_table(model, np.arange(3.0), np.zeros((3, width)), calibrate_rows=-1)
    assert main(["models", "score", path, "--calibrate-rows", "0"]) == 0
