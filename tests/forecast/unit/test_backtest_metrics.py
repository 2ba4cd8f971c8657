"""The backtest's accuracy measures on cases computed by hand."""

from __future__ import annotations

import math

import pytest

from salesops_forecast.domain.accuracy import (
    CalibrationBin,
    auc,
    brier,
    calibration,
    mase,
    naive_scale,
    wape,
)

pytestmark = pytest.mark.unit


def test_wape_is_absolute_error_over_actual_bookings() -> None:
    # |10| + |−50| + |20| = 80 over 300 booked.
    assert wape([100, 200, 0], [110, 150, 20]) == pytest.approx(80 / 300)
    assert math.isnan(wape([0, 0], [1, 2]))  # nothing booked: undefined, not infinite


def test_mase_scales_by_the_naive_forecasts_in_sample_error() -> None:
    scale = naive_scale([10, 20, 15, 25])  # changes 10, 5, 10
    assert scale == pytest.approx(25 / 3)
    assert mase([30, 20], [25, 25], scale=scale) == pytest.approx(5 / (25 / 3))
    assert naive_scale([10, 20, 30, 40], lag=3) == 30
    assert math.isnan(mase([1], [2], scale=naive_scale([5])))


def test_auc_counts_pairs_ordered_right_with_ties_as_half() -> None:
    # Winners 0.9, 0.4, 0.7 against losers 0.8, 0.4: 2 + 0.5 + 1 of 6 pairs.
    assert auc([1, 0, 1, 0, 1], [0.9, 0.8, 0.4, 0.4, 0.7]) == pytest.approx(3.5 / 6)
    assert auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert auc([1, 0], [0.2, 0.9]) == 0.0
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_brier_is_the_mean_squared_probability_error() -> None:
    assert brier([1, 0], [0.8, 0.3]) == pytest.approx((0.04 + 0.09) / 2)


def test_calibration_bins_predicted_against_won() -> None:
    table = calibration([0, 1, 0, 1, 1], [0.05, 0.15, 0.12, 0.95, 1.0], bins=10)
    assert table == [
        CalibrationBin(0.0, 0.1, 1, pytest.approx(0.05), 0.0),
        CalibrationBin(0.1, 0.2, 2, pytest.approx(0.135), 0.5),
        CalibrationBin(pytest.approx(0.9), 1.0, 2, pytest.approx(0.975), 1.0),
    ]
