"""The time-series methods a forecast blends, the same in a service run and in a backtest."""

from __future__ import annotations

from salesops_forecast.series.baselines import SEASONAL_NAIVE, seasonal_naive
from salesops_forecast.series.decomposition import SEASONAL_RUN_RATE, seasonal_run_rate
from salesops_forecast.series.ets import Array, SeriesForecast, auto_ets
from salesops_forecast.series.seasons import Frequency, quarter_length, season_length
from salesops_forecast.series.theta import theta

AUTO_ETS, THETA = "auto_ets", "theta"
SERIES_METHODS = (AUTO_ETS, THETA, SEASONAL_RUN_RATE, SEASONAL_NAIVE)


def series_forecasts(y: Array, *, frequency: Frequency, horizon: int) -> dict[str, SeriesForecast]:
    """AutoETS and Theta with a year's season once two years exist (else a quarter's), the
    seasonal run-rate with the quarter's season, and seasonal naive (the same period one
    season of AutoETS's ago, once a season exists), for every row of ``y``."""
    m = season_length(frequency, y.shape[1])
    out = {
        AUTO_ETS: auto_ets(y, season_length=m, horizon=horizon),
        THETA: theta(y, season_length=m, horizon=horizon),
        SEASONAL_RUN_RATE: seasonal_run_rate(
            y, season_length=quarter_length(frequency), horizon=horizon
        ),
    }
    if y.shape[1] >= m:
        out[SEASONAL_NAIVE] = seasonal_naive(y, season_length=m, horizon=horizon)
    return out
