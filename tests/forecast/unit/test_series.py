"""Time-series forecasts on generated series whose right answer is known, and next to
statsforecast's implementation of the same methods on the same series."""

from __future__ import annotations

import numpy as np
import pytest
from statsforecast.models import AutoETS, Theta

from salesops_forecast.series.baselines import mean_of_last, naive, seasonal_naive
from salesops_forecast.series.ets import Model, auto_ets, ets_forecast
from salesops_forecast.series.theta import theta

pytestmark = pytest.mark.unit

MONTHS = 12
Z80, Z95 = 1.2816, 1.96


def seasonal_series(
    rng: np.random.Generator,
    *,
    count: int,
    years: int,
    noise: float = 8.0,
    slope: tuple[float, float] = (-0.5, 1.0),
    amplitude: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bookings with a level of 100, a trend (slope per month drawn from ``slope``), a
    yearly pattern and white noise; returns the series and their noise-free continuation
    for one more year."""
    t = np.arange((years + 1) * MONTHS)
    trend = rng.uniform(*slope, (count, 1)) * t
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    truth = 100 + trend + amplitude * np.sin(2 * np.pi * t / MONTHS + phase)
    observed = truth + rng.normal(0, noise, truth.shape)
    cut = years * MONTHS
    return observed[:, :cut], truth[:, cut:]


def local_level(rng: np.random.Generator, *, count: int, length: int, alpha: float) -> np.ndarray:
    """Series from ETS(A,N,N) itself: y_t = l_{t-1} + e_t, l_t = l_{t-1} + alpha·e_t."""
    e = rng.normal(0, 10, (count, length))
    level = np.full(count, 200.0)
    y = np.empty((count, length))
    for t in range(length):
        y[:, t] = level + e[:, t]
        level = level + alpha * e[:, t]
    return y


def mae(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.abs(forecast - actual).mean())


def test_seasonal_ets_recovers_a_known_yearly_pattern_and_beats_the_naive_forecasts() -> None:
    y, truth = seasonal_series(np.random.default_rng(6), count=40, years=4)

    ets = auto_ets(y, season_length=MONTHS, horizon=MONTHS)

    assert sum("A)" in name for name in ets.methods) >= 36  # a seasonal model, nearly always
    # Against the noise-free future: the fitted pattern is far closer than repeating last
    # year's noisy months or last month.
    snaive = seasonal_naive(y, season_length=MONTHS, horizon=MONTHS).mean
    flat = naive(y, horizon=MONTHS).mean
    assert mae(ets.mean, truth) < 0.75 * mae(snaive, truth)
    assert mae(snaive, truth) < 0.5 * mae(flat, truth)


def test_without_two_full_seasons_no_seasonal_model_is_fitted() -> None:
    y, _ = seasonal_series(np.random.default_rng(7), count=10, years=1)
    ets = auto_ets(y[:, :20], season_length=MONTHS, horizon=3)
    assert all(name.endswith("N)") for name in ets.methods)


def test_prediction_intervals_cover_near_their_nominal_rates() -> None:
    rng = np.random.default_rng(11)
    # A level that moves a lot (alpha 0.6): six months ahead the spread must have grown
    # by sqrt(1 + 5·0.6²) for the intervals to hold.
    y = local_level(rng, count=600, length=42, alpha=0.6)
    history, future = y[:, :36], y[:, 36:]

    ets = auto_ets(history, season_length=1, horizon=6)

    inside80 = np.abs(future - ets.mean) <= Z80 * ets.sigma
    inside95 = np.abs(future - ets.mean) <= Z95 * ets.sigma
    assert 0.74 <= inside80.mean() <= 0.86
    assert 0.91 <= inside95.mean() <= 0.98
    # The farthest month on its own (plug-in intervals run a little narrow: the fitted
    # parameters' own uncertainty is not in them).
    assert 0.70 <= inside80[:, -1].mean() <= 0.88
    assert 0.89 <= inside95[:, -1].mean() <= 0.99


def seasonal_walk(
    rng: np.random.Generator, *, count: int, length: int, alpha: float, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Series from ETS(A,N,A) itself, whose yearly pattern keeps drifting; returns them
    and the true expectation of the next year (last level + last seasonal states)."""
    e = rng.normal(0, 4, (count, length))
    level = np.full(count, 100.0)
    season = np.tile(20 * np.sin(2 * np.pi * np.arange(MONTHS) / MONTHS), (count, 1))
    y = np.empty((count, length))
    for t in range(length):
        y[:, t] = level + season[:, t % MONTHS] + e[:, t]
        level = level + alpha * e[:, t]
        season[:, t % MONTHS] += gamma * e[:, t]
    ahead = np.arange(length, length + MONTHS) % MONTHS
    return y, level[:, None] + season[:, ahead]


def test_seasonal_ets_on_its_own_model_is_as_close_to_the_truth_as_statsforecast() -> None:
    y, expected = seasonal_walk(
        np.random.default_rng(5), count=12, length=6 * MONTHS, alpha=0.2, gamma=0.3
    )
    seasonal = Model(trend=False, damped=False, seasonal=True)

    ours = ets_forecast(y, model=seasonal, season_length=MONTHS, horizon=MONTHS).mean
    theirs = np.stack(
        [AutoETS(season_length=MONTHS, model="ANA").forecast(row, h=MONTHS)["mean"] for row in y]
    )

    assert mae(ours, expected) < 1.2 * mae(theirs, expected)
    snaive = seasonal_naive(y, season_length=MONTHS, horizon=MONTHS).mean
    assert mae(ours, expected) < 0.6 * mae(snaive, expected)


@pytest.mark.parametrize(
    ("model", "spec", "damped"),
    [
        (Model(trend=False, damped=False, seasonal=False), "ANN", False),
        (Model(trend=True, damped=False, seasonal=False), "AAN", False),
        (Model(trend=True, damped=True, seasonal=False), "AAN", True),
        (Model(trend=False, damped=False, seasonal=True), "ANA", False),
        (Model(trend=True, damped=False, seasonal=True), "AAA", False),
    ],
)
def test_each_ets_model_forecasts_close_to_statsforecast(
    model: Model, spec: str, damped: bool
) -> None:
    # Each model on series of its kind: a yearly pattern only where the model has one.
    amplitude = 30.0 if model.seasonal else 0.0
    y, _ = seasonal_series(np.random.default_rng(3), count=12, years=3, amplitude=amplitude)
    ours = ets_forecast(y, model=model, season_length=MONTHS, horizon=6)
    for i, series in enumerate(y):
        theirs = AutoETS(season_length=MONTHS, model=spec, damped=damped).forecast(
            series, h=6, level=[95]
        )
        scale = float(np.abs(series).mean())
        # Both fit the same model by least squares; optimisers and starting states differ.
        assert np.abs(ours.mean[i] - theirs["mean"]).max() < 0.06 * scale
        spread = theirs["hi-95"][0] - theirs["mean"][0]
        assert Z95 * ours.sigma[i, 0] == pytest.approx(spread, rel=0.25)


def test_auto_ets_forecasts_close_to_statsforecast_autoets() -> None:
    y, _ = seasonal_series(np.random.default_rng(4), count=24, years=3)
    ours = auto_ets(y, season_length=MONTHS, horizon=6)
    gaps = []
    for i, series in enumerate(y):
        theirs = AutoETS(season_length=MONTHS, model="AZZ").forecast(series, h=6)["mean"]
        gaps.append(np.abs(ours.mean[i] - theirs).mean() / np.abs(series).mean())
    # Where AICc picks another model the forecasts differ more; most series agree closely.
    assert np.median(gaps) < 0.03
    assert np.mean(gaps) < 0.08


def test_theta_forecasts_close_to_statsforecast_theta() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(30)
    y = 200 + rng.normal(0, 3, (10, 1)) * t + rng.normal(0, 10, (10, 30))
    ours = theta(y, season_length=1, horizon=4)
    for i, series in enumerate(y):
        theirs = Theta(season_length=1).forecast(series, h=4, level=[80])
        assert np.abs(ours.mean[i] - theirs["mean"]).max() < 0.03 * np.abs(series).mean()
        spread = theirs["hi-80"][0] - theirs["mean"][0]
        assert Z80 * ours.sigma[i, 0] == pytest.approx(spread, rel=0.35)


def test_theta_deseasonalises_seasonal_series_and_beats_naive() -> None:
    # A year-end rush: December books 60 above trend. (A smooth yearly wave of three years
    # does not pass the autocorrelation test that decides on deseasonalising; a rush does.)
    rng = np.random.default_rng(8)
    t = np.arange(4 * MONTHS)
    truth = 100 + rng.uniform(-0.5, 1.0, (30, 1)) * t + 60 * (t % MONTHS == MONTHS - 1)
    y = truth + rng.normal(0, 8, truth.shape)
    history, future = y[:, : 3 * MONTHS], truth[:, 3 * MONTHS :]

    ours = theta(history, season_length=MONTHS, horizon=MONTHS)

    assert mae(ours.mean, future) < 0.5 * mae(naive(history, horizon=MONTHS).mean, future)
    december = ours.mean[:, -1] - ours.mean[:, -2]
    assert np.median(december) == pytest.approx(60, abs=10)


def test_baselines_on_hand_computed_series() -> None:
    y = np.array([[10.0, 20.0, 30.0, 40.0, 10.0, 20.0, 30.0, 40.0]])
    assert naive(y, horizon=2).mean.tolist() == [[40.0, 40.0]]
    assert mean_of_last(y, horizon=1).mean.tolist() == [[30.0]]
    assert seasonal_naive(y, season_length=4, horizon=6).mean.tolist() == [
        [10.0, 20.0, 30.0, 40.0, 10.0, 20.0]
    ]
    # A series that repeats exactly has no seasonal-naive error to spread.
    assert seasonal_naive(y, season_length=4, horizon=2).sigma.tolist() == [[0.0, 0.0]]
    # Naive errors are 10, 10, 10, −30, 10, 10, 10: RMS sqrt(1500/7), widened by sqrt(h).
    assert naive(y, horizon=2).sigma[0, 1] == pytest.approx(np.sqrt(1500 / 7) * np.sqrt(2))
