"""The seasonal run-rate (month-in-quarter decomposition) on generated series with a known
quarterly rhythm: a quiet first month, a quarter-end push."""

from __future__ import annotations

import numpy as np
import pytest

from salesops_forecast.series.baselines import mean_of_last
from salesops_forecast.series.decomposition import season_index, seasonal_run_rate
from salesops_forecast.series.methods import SERIES_METHODS, series_forecasts

pytestmark = pytest.mark.unit

# Month 1, 2, 3 of a quarter, relative to the quarter's mean month.
PATTERN = np.array([0.7, 1.0, 1.3])


def quarterly(
    rng: np.random.Generator, *, count: int, months: int, noise: float = 0.05, drift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Bookings = level (slowly drifting, per month) × the month-in-quarter pattern ×
    lognormal noise; the history starts on a quarter's first month. Returns the history and
    the noise-free next quarter."""
    t = np.arange(months + 3)
    level = 1000 * (1 + rng.uniform(-drift, drift, (count, 1)) * t)
    truth = level * PATTERN[t % 3]
    observed = truth * rng.lognormal(0, noise, truth.shape)
    return observed[:, :months], truth[:, months:]


def test_the_month_in_quarter_pattern_is_recovered_from_a_few_quarters() -> None:
    rng = np.random.default_rng(6)
    y, _ = quarterly(rng, count=200, months=12)
    index = season_index(y, 3)
    # The last observation is the quarter's third month: positions 0, 1, 2 are months 1-3.
    # Four quarters: shrunk by 4/5 toward 1.
    expected = 1 + 0.8 * (PATTERN - 1)
    assert index.mean(axis=0) == pytest.approx(expected, abs=0.02)
    assert np.all(np.abs(index - expected) < 0.1)


def test_the_shrinkage_fades_as_quarters_accumulate() -> None:
    rng = np.random.default_rng(7)
    short, _ = quarterly(rng, count=200, months=6, noise=0.0)
    long, _ = quarterly(rng, count=200, months=48, noise=0.0)
    assert season_index(short, 3)[0, 0] > season_index(long, 3)[0, 0] > PATTERN[0]
    assert season_index(long, 3)[0] == pytest.approx(PATTERN, abs=0.02)


def test_one_quarter_counts_half_and_positions_follow_the_last_observation() -> None:
    # Four months: the last three are the season; the next month is position 0.
    y = np.array([[999.0, 50.0, 100.0, 150.0]])
    assert season_index(y, 3)[0] == pytest.approx([0.75, 1.0, 1.25])
    # Run-rate: the mean of the adjusted last three (50/0.75, 100, 150/1.25).
    adjusted = np.mean([50 / 0.75, 100, 150 / 1.25])
    f = seasonal_run_rate(y, season_length=3, horizon=3)
    assert f.mean[0] == pytest.approx(adjusted * np.array([0.75, 1.0, 1.25]))


def test_no_pattern_gives_an_index_near_one() -> None:
    rng = np.random.default_rng(8)
    y = 1000 * rng.lognormal(0, 0.05, (200, 12))
    assert season_index(y, 3).mean(axis=0) == pytest.approx(np.ones(3), abs=0.02)


@pytest.mark.parametrize("months", [6, 9, 24])
def test_it_beats_the_mean_of_three_on_quarterly_series(months: int) -> None:
    rng = np.random.default_rng(months)
    y, truth = quarterly(rng, count=300, months=months, noise=0.1, drift=0.01)
    ours = seasonal_run_rate(y, season_length=3, horizon=3).mean
    mean_3 = mean_of_last(y, horizon=3).mean
    our_error = np.abs(ours - truth).sum() / truth.sum()
    mean_3_error = np.abs(mean_3 - truth).sum() / truth.sum()
    assert our_error < 0.6 * mean_3_error
    # The next quarter's months come out in the pattern's order.
    assert np.all(np.argsort(ours.mean(axis=0)) == np.argsort(PATTERN))


def test_zero_bookings_forecast_zero_not_nan() -> None:
    y = np.zeros((2, 9))
    y[1, 4] = 500.0
    f = seasonal_run_rate(y, season_length=3, horizon=2)
    assert np.all(np.isfinite(f.mean))
    assert np.all(np.isfinite(f.sigma))
    assert f.mean[0] == pytest.approx([0, 0])


def test_the_service_and_the_backtest_blend_the_same_series_methods() -> None:
    rng = np.random.default_rng(9)
    y, _ = quarterly(rng, count=5, months=9)
    found = series_forecasts(y, frequency="month", horizon=1)
    assert tuple(found) == SERIES_METHODS
    assert found["seasonal_run_rate"].mean == pytest.approx(
        seasonal_run_rate(y, season_length=3, horizon=1).mean
    )
