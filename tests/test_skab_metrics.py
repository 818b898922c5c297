"""SKAB's metrics (`bench.anomaly.skab`): point-wise F1 / FAR / MAR over concatenated files and the
NAB-style score with 60 s windows to the right of each change point, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.anomaly import __main__ as runner
from bench.anomaly import data, skab
from bench.anomaly.nab import REWARD_LOW_FN, REWARD_LOW_FP
from tests.anomaly_data import data_root

# SKAB's scoring curve: y(k) = (A_TP + A_FP)/2 * (1 - tanh(x)/tanh(pi/2)) - A_FP at
# x = -pi/2 + pi*k/999, k = min(int(1000 * (t - start) / (end - start)), 999):
#   y(0) = A_TP = 1;  y(999) = -A_FP = -0.11;
#   y(500): x = pi * (500/999 - 1/2) = 0.0015724, tanh(x)/tanh(pi/2) = 0.0015724/0.9171523 = 0.0017144
#           -> 0.555 * (1 - 0.0017144) - 0.11 = 0.4440485 (standard); 0.61 * 0.9982856 - 0.22 = 0.3889542 (low FP)
Y500 = 0.4440485071
T = np.arange(300, dtype=np.float64)  # one row per second


def flags(*rows: int, n: int = 300) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(rows)] = True
    return out


def score(true_rows: tuple[int, ...], pred_rows: tuple[int, ...]) -> dict[str, float]:
    return skab.nab_scores([T], [flags(*true_rows)], [flags(*pred_rows)])


def test_binary_metrics_sum_the_files_first() -> None:
    truth = [np.array([0, 0, 1, 1, 1, 0], bool), np.array([1, 0], bool)]
    pred = [np.array([0, 1, 1, 1, 0, 0], bool), np.array([1, 1], bool)]
    m = skab.binary_metrics(truth, pred)
    # file 1: TP 2, TN 2, FP 1, FN 1; file 2: TP 1, FP 1 -> TP 3, TN 2, FP 2, FN 1
    assert (m.tp, m.tn, m.fp, m.fn) == (3, 2, 2, 1)
    assert m.f1 == pytest.approx(3 / (3 + 1.5))  # 2TP / (2TP + FP + FN) = 6/9
    assert m.far == pytest.approx(2 / 4)
    assert m.mar == pytest.approx(1 / 4)


def test_binary_metrics_edge_cases() -> None:
    m = skab.binary_metrics([np.zeros(4, bool)], [np.zeros(4, bool)])
    assert (m.f1, m.far, m.mar) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="shapes"):
        skab.binary_metrics([np.zeros(4, bool)], [np.zeros(3, bool)])


def test_predicted_changepoints_are_the_changes_of_the_prediction() -> None:
    p = np.array([1, 1, 0, 0, 1, 1, 0], bool)
    assert skab.predicted_changepoints(p).tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert skab.predicted_changepoints(np.array([0, 0, 1], bool)).tolist() == [0, 0, 1]


def test_detection_at_the_changepoint_is_perfect() -> None:
    res = score((100,), (100,))
    # S = y(0) = 1; null = -1, perfect = 1 -> 100 on every profile (A_TP = 1 in all three)
    assert res == pytest.approx(
        {"standard": 100.0, "reward_low_FP_rate": 100.0, "reward_low_FN_rate": 100.0}
    )


def test_detection_late_in_the_window_earns_less() -> None:
    # window [100, 160]; t = 130: k = int(30/60 * 1000) = 500 -> y = 0.4440485
    mid = score((100,), (130,))
    assert mid["standard"] == pytest.approx(100 * (Y500 + 1) / 2)
    assert mid["reward_low_FP_rate"] == pytest.approx(100 * (0.3889542150 + 1) / 2)
    assert mid["reward_low_FN_rate"] == pytest.approx(100 * (Y500 + 2) / 3)  # null -2, perfect 1
    # t = 160, the right edge: k = 1000 -> 999 -> y = -A_FP = -0.11 -> 100 * 0.89 / 2
    assert score((100,), (160,))["standard"] == pytest.approx(44.5)
    # only the first detection in the window counts; the later ones cost nothing
    assert score((100,), (130, 140, 150)) == pytest.approx(mid)


def test_missed_window_and_false_positives() -> None:
    res = score((100,), (50, 200))
    # t = 50 before the window, t = 200 after it: 2 * -0.11; the window is missed: -1
    assert res["standard"] == pytest.approx(100 * (-1.22 + 1) / 2)  # -11
    assert res["reward_low_FP_rate"] == pytest.approx(100 * (-1.44 + 1) / 2)  # -22
    assert res["reward_low_FN_rate"] == pytest.approx(100 * (-2.22 + 2) / 3)
    assert score((100,), ()) == pytest.approx(
        {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0}
    )


def test_overlapping_windows_start_where_the_previous_ends() -> None:
    # change points at 100 and 130: windows [100, 160] and [160, 190]
    # t = 160 is the end of the first (-0.11) and the start of the second (+1): S = 0.89 of 2 windows
    assert score((100, 130), (160,))["standard"] == pytest.approx(100 * (0.89 + 2) / 4)
    # t = 175: first window missed (-1); second at (175 - 160) / 30 -> k = 500 -> 0.4440485
    assert score((100, 130), (175,))["standard"] == pytest.approx(100 * (-1 + Y500 + 2) / 4)


def test_scores_sum_over_files_before_normalising() -> None:
    res = skab.nab_scores([T, T], [flags(100), flags(100)], [flags(100), flags()])
    # S = 1 - 1 = 0; null = -2, perfect = 2 -> 50
    assert res["standard"] == pytest.approx(50.0)
    with_profiles = skab.nab_scores(
        [T], [flags(100)], [flags(130)], profiles=(REWARD_LOW_FN, REWARD_LOW_FP)
    )
    assert list(with_profiles) == ["reward_low_FN_rate", "reward_low_FP_rate"]


def test_binary_prediction_end_to_end() -> None:
    # an alarm raised at 110 and dropped at 250: change points at 110 (in [100, 160]) and 250 (FP)
    pred = np.zeros(300, bool)
    pred[110:250] = True
    cps = skab.predicted_changepoints(pred)
    assert np.flatnonzero(cps).tolist() == [110, 250]
    res = skab.nab_scores([T], [flags(100)], [cps])
    # k = int(10/60 * 1000) = 166: x = -pi/2 + pi*166/999
    x = -math.pi / 2 + math.pi * 166 / 999
    y = 0.555 * (1 - math.tanh(x) / math.tanh(math.pi / 2)) - 0.11
    assert res["standard"] == pytest.approx(100 * (y - 0.11 + 1) / 2)


def test_load_skab_file_parses_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "0.csv"
    header = ";".join(("datetime", *skab.SENSOR_COLUMNS, "anomaly", "changepoint"))
    path.write_text(
        header + "\n"
        "2020-03-09 10:14:33;1;2;3;4;5;6;7;8;0.0;0.0\n"
        "2020-03-09 10:14:34;1.5;2;3;4;5;6;7;;1.0;1.0\n",
        encoding="utf-8",
    )
    f = skab.load_skab_file(path)
    assert f.timestamps.tolist() == [1583748873.0, 1583748874.0]
    assert f.values.shape == (2, 8)
    assert f.values[1, 0] == 1.5
    assert math.isnan(f.values[1, 7])
    assert f.anomaly.tolist() == [False, True]
    assert f.changepoint.tolist() == [False, True]


# -- the real valve data -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def valves() -> list[skab.SkabFile]:
    return skab.load_skab(data_root("skab"))


def test_flagging_every_row_scores_f1_0_70_on_the_valves(valves: list[skab.SkabFile]) -> None:
    assert len(valves) == 20
    truth = [f.anomaly[400:] for f in valves]
    m = skab.binary_metrics(truth, [np.ones_like(t) for t in truth])
    assert round(m.f1, 2) == 0.70  # the SKAB README's warning: F1 alone rewards always alarming
    assert (m.far, m.mar) == (1.0, 0.0)


def test_never_alarming_on_the_valves_scores_zero(valves: list[skab.SkabFile]) -> None:
    res = skab.nab_scores(
        [f.timestamps[400:] for f in valves],
        [f.changepoint[400:] for f in valves],
        [np.zeros(len(f.timestamps) - 400, bool) for f in valves],
    )
    assert res == {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0}


# -- finding the data, and the runner's own baseline -------------------------------------------


def test_find_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, fallback = tmp_path / "explicit", tmp_path / "env", tmp_path / "fallback"
    for root in (explicit, env, fallback):
        (root / "skab").mkdir(parents=True)
    monkeypatch.setattr(data, "_FALLBACKS", (fallback,))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.find_data_root() == fallback
    monkeypatch.setenv(data.ENV_VAR, str(env))
    assert data.find_data_root() == env
    assert data.find_data_root(explicit) == explicit
    with pytest.raises(data.DataNotFoundError, match="--data"):
        data.find_data_root(tmp_path / "nowhere")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(data.DataNotFoundError, match=data.ENV_VAR):
        data.find_data_root()
    monkeypatch.delenv(data.ENV_VAR)
    monkeypatch.setattr(data, "_FALLBACKS", (tmp_path / "nowhere",))
    with pytest.raises(data.DataNotFoundError, match="HOMEGUARD_DATA"):
        data.find_data_root()


def test_zscore_baseline_fires_at_three_sigma() -> None:
    calib = np.tile([[-1.0, 10.0], [1.0, 10.0]], (200, 1))  # column 0: mean 0, std 1; column 1 flat
    rows = np.vstack([calib, [[3.0, 10.0], [2.0, 10.0], [0.0, 10.0]]])
    out = runner.zscore_baseline(np.arange(len(rows), dtype=np.float64), rows, 400)
    # z = 3 -> 3 / (3 + 3) = 0.5 (fires); z = 2 -> 0.4; a flat column (std 0, no change) adds nothing
    assert out.scores[400:].tolist() == pytest.approx([0.5, 0.4, 0.0])
    assert out.is_anomaly[400:].tolist() == [True, False, False]
    assert not out.is_anomaly[:400].any()
    # rolling (no calibration): row i compares with the rows before it only
    rolling = runner.zscore_baseline(np.arange(5.0), np.array([1.0, -1.0, 1.0, -1.0, 4.0]))
    # before row 4: mean 0, std 1 -> z = 4 -> 4/7; rows 0 and 1 have fewer than two earlier readings
    assert rolling.scores[4] == pytest.approx(4 / 7)
    assert rolling.scores[:2].tolist() == [0.0, 0.0]


def test_runner_prints_the_skab_table(
    valves: list[skab.SkabFile], capsys: pytest.CaptureFixture[str]
) -> None:
    runner.run_skab(data_root("skab"), [(runner.BASELINE, runner.zscore_baseline)])
    out = capsys.readouterr().out
    assert "| MSCRED (published) |" in out
    line = next(row for row in out.splitlines() if row.startswith(f"| {runner.BASELINE} |"))
    f1 = float(line.split("|")[2])
    assert 0.0 < f1 <= 1.0
