"""Seasonal run-rate: a classical multiplicative decomposition, fitted to many series at once.

B2B bookings have a rhythm inside the quarter (a quiet first month, a quarter-end push)
that a year-long season cannot see until two years of history exist. This method needs
only whole seasons (a quarter: three months or thirteen weeks):

1. Trend: the centred moving average of one season (2×m when m is even).
2. Index of each position in the season: Σ y / Σ trend over the observations at that
   position where the trend is defined (the aggregate ratio, so that zeros do no harm),
   normalised to average 1, then shrunk toward 1 by n_j / (n_j + 1), n_j the number of
   ratios behind it: one season's evidence counts half.
3. Run-rate: the mean of the last m seasonally adjusted observations (y / index).
4. Forecast: run-rate × the index of the period's position (flat, no trend).

Positions count back from the last observation, so every block of m ending at the origin
holds each position once, whatever the calendar. Spread: the RMS of the method's own
one-step errors over the history, widened by sqrt(h).
"""

from __future__ import annotations

import numpy as np

from salesops_forecast.series.ets import Array, SeriesForecast

SEASONAL_RUN_RATE = "seasonal_run_rate"
SHRINKAGE = 1.0  # pseudo-observations of "no season" each index is shrunk with


def centred_trend(y: Array, m: int) -> Array:
    """Centred moving average of one season, NaN where the window does not fit."""
    n, t_len = y.shape
    kernel = np.full(m, 1 / m) if m % 2 else np.r_[0.5, np.ones(m - 1), 0.5] / m
    half = len(kernel) // 2
    trend = np.full((n, t_len), np.nan)
    if t_len >= len(kernel):
        windows = np.lib.stride_tricks.sliding_window_view(y, len(kernel), axis=1)
        trend[:, half : t_len - half] = windows @ kernel
    return trend


def season_index(y: Array, m: int) -> Array:
    """Multiplicative index per position (series, m), shrunk toward 1; position j is the
    one of observations t with (t_len − 1 − t) % m == m − 1 − j, i.e. the last observation
    is position m − 1."""
    n, t_len = y.shape
    trend = centred_trend(y, m)
    defined = ~np.isnan(trend[0]) if n else np.zeros(t_len, dtype=bool)
    positions = (np.arange(t_len) - t_len) % m
    index = np.ones((n, m))
    counts = np.zeros(m)
    for j in range(m):
        at = defined & (positions == j)
        counts[j] = at.sum()
        if counts[j]:
            booked, run = y[:, at].sum(axis=1), trend[:, at].sum(axis=1)
            index[:, j] = np.where(run > 0, booked / np.where(run > 0, run, 1), 1.0)
    mean = index.mean(axis=1, keepdims=True)
    index = np.where(mean > 0, index / np.where(mean > 0, mean, 1), 1.0)
    weight = counts / (counts + SHRINKAGE)
    shrunk: Array = 1 + weight[None, :] * (index - 1)
    return shrunk


def _run_rate(y: Array, index: Array, m: int) -> Array:
    """Mean of the last m seasonally adjusted observations (fewer when fewer exist)."""
    t_len = y.shape[1]
    last = min(m, t_len)
    positions = (np.arange(t_len - last, t_len) - t_len) % m
    factors = np.maximum(index[:, positions], 1e-9)
    rate: Array = (y[:, t_len - last :] / factors).mean(axis=1)
    return rate


def seasonal_run_rate(y: Array, *, season_length: int, horizon: int) -> SeriesForecast:
    """Forecast each row of ``y`` ``horizon`` periods ahead (see the module)."""
    y = np.asarray(y, dtype=float)
    m = max(season_length, 1)
    n, t_len = y.shape
    index = season_index(y, m)
    steps = np.arange(1, horizon + 1)
    mean = _run_rate(y, index, m)[:, None] * index[:, (steps - 1) % m]
    errors = _one_step_errors(y, m)
    rms = np.sqrt(np.mean(errors**2, axis=1)) if errors.shape[1] else np.zeros(n)
    sigma = rms[:, None] * np.sqrt(steps)[None, :]
    return SeriesForecast(mean, sigma, [SEASONAL_RUN_RATE] * n)


def _one_step_errors(y: Array, m: int) -> Array:
    """The method's own errors at each earlier origin with at least one season behind it."""
    t_len = y.shape[1]
    errors = [y[:, t] - seasonal_run_rate_point(y[:, :t], m) for t in range(min(m, t_len), t_len)]
    return np.stack(errors, axis=1) if errors else np.zeros((len(y), 0))


def seasonal_run_rate_point(y: Array, m: int) -> Array:
    """The one-step forecast alone."""
    index = season_index(y, m)
    rate: Array = _run_rate(y, index, m) * index[:, 0]
    return rate
