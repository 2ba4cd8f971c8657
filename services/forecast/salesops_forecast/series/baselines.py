"""The simple forecasts teams use today, as baselines every method is held against.

Spreads come from each baseline's own one-step errors in the history (sqrt(h) growth for the
naive forecasts), so that they can be blended and scored like the others.
"""

from __future__ import annotations

import numpy as np

from salesops_forecast.series.ets import Array, SeriesForecast

NAIVE = "naive"
MEAN_3 = "mean_3"
SEASONAL_NAIVE = "seasonal_naive"


def _spread(errors: Array, steps: Array) -> Array:
    """RMS of the in-sample errors (0 when there are none), widened by sqrt(h)."""
    rms = np.sqrt(np.nanmean(errors**2, axis=1)) if errors.shape[1] else np.zeros(len(errors))
    return np.nan_to_num(rms)[:, None] * np.sqrt(steps)[None, :]


def naive(y: Array, *, horizon: int) -> SeriesForecast:
    """Same as last period."""
    steps = np.arange(1.0, horizon + 1)
    mean = np.repeat(y[:, -1:], horizon, axis=1)
    return SeriesForecast(mean, _spread(np.diff(y, axis=1), steps), [NAIVE] * len(y))


def mean_of_last(y: Array, *, horizon: int, periods: int = 3) -> SeriesForecast:
    """The mean of the last ``periods`` periods (of what there is, when fewer)."""
    steps = np.arange(1.0, horizon + 1)
    mean = np.repeat(y[:, -periods:].mean(axis=1, keepdims=True), horizon, axis=1)
    windows = [y[:, t - periods : t].mean(axis=1) for t in range(periods, y.shape[1])]
    fitted = np.stack(windows, axis=1) if windows else np.zeros((len(y), 0))
    errors = y[:, periods:] - fitted
    return SeriesForecast(mean, _spread(errors, steps), [MEAN_3] * len(y))


def seasonal_naive(y: Array, *, season_length: int, horizon: int) -> SeriesForecast:
    """Same as the same period one season ago."""
    m = season_length
    steps = np.arange(1, horizon + 1)
    t_len = y.shape[1]
    mean = y[:, t_len - m + (steps - 1) % m]
    seasons = np.ceil(steps / m)
    errors = y[:, m:] - y[:, :-m]
    rms = _spread(errors, np.ones(1))[:, :1]
    return SeriesForecast(mean, rms * np.sqrt(seasons)[None, :], [SEASONAL_NAIVE] * len(y))
