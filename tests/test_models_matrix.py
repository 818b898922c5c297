"""The calibration's linear algebra (pure Python, for a daemon without numpy) agrees with numpy's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import matrix


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_covariance_and_inverse_agree_with_numpy(k: int) -> None:
    rng = np.random.default_rng(k)
    mixing = rng.normal(size=(k, k))
    data = rng.normal(size=(400, k)) @ mixing + rng.normal(size=k) * 10
    cov = matrix.covariance(data.T.tolist())
    np.testing.assert_allclose(cov, np.cov(data.T).reshape(k, k), rtol=1e-12, atol=1e-12)
    ridged = np.asarray(cov) + 0.01 * np.eye(k)
    inv = matrix.inverse(ridged.tolist())
    np.testing.assert_allclose(inv, np.linalg.inv(ridged), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(inv) @ ridged, np.eye(k), atol=1e-9)


def test_inverse_pivots_past_a_zero_on_the_diagonal() -> None:
    assert matrix.inverse([[0.0, 2.0], [4.0, 0.0]]) == [[0.0, 0.25], [0.5, 0.0]]


def test_a_singular_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="singular"):
        matrix.inverse([[1.0, 2.0], [2.0, 4.0]])


def test_mean_and_std_skip_missing_values_like_nanmean_and_nanstd() -> None:
    values = [1.0, math.nan, 4.0, 2.5, math.nan, -3.0]
    mean, std = matrix.mean_and_std(values)
    assert mean == pytest.approx(float(np.nanmean(values)), rel=1e-15)
    assert std == pytest.approx(float(np.nanstd(values)), rel=1e-15)
    nothing = matrix.mean_and_std([math.nan, math.nan])
    assert all(math.isnan(v) for v in nothing)


def test_mean_and_std_of_values_whose_squares_overflow_is_infinite_not_an_error() -> None:
    mean, std = matrix.mean_and_std([1e160, -1e160, 0.0])
    assert mean == 0.0
    assert std == math.inf
