"""The standard Theta method (Assimakopoulos & Nikolopoulos; Hyndman & Billah's form),
fitted to many series at once.

Each series is deseasonalised (additively: bookings can be zero) when it has two full
seasons and its autocorrelation at the seasonal lag is significant at 90 %; simple
exponential smoothing (alpha and the initial level fitted as in ``ets``) then gives the
level, and half the slope of a straight line through the series gives the drift:
    yhat(h) = level + b/2 · (h − 1 + 1/alpha − (1 − alpha)^T / alpha).
Intervals are simple smoothing's: sigma²·(1 + (h − 1)·alpha²).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from salesops_forecast.series.ets import (
    Array,
    Model,
    SeriesForecast,
    fit_model,
    free_parameters,
    seasonal_indices,
)

SIMPLE = Model(trend=False, damped=False, seasonal=False)
SEASONAL_TEST_Z = 1.645
THETA = "theta"


def seasonal_lag_significant(y: Array, m: int) -> npt.NDArray[np.bool_]:
    """Per series: is the autocorrelation at lag m beyond 1.645 standard errors (Bartlett)?"""
    n, t_len = y.shape
    centred = y - y.mean(axis=1, keepdims=True)
    var = np.einsum("nt,nt->n", centred, centred)
    acf = (
        np.stack(
            [
                np.einsum("nt,nt->n", centred[:, k:], centred[:, : t_len - k])
                for k in range(1, m + 1)
            ],
            axis=1,
        )
        / np.where(var > 0, var, 1)[:, None]
    )
    bound = SEASONAL_TEST_Z * np.sqrt((1 + 2 * np.sum(acf[:, :-1] ** 2, axis=1)) / t_len)
    significant: npt.NDArray[np.bool_] = (var > 0) & (np.abs(acf[:, -1]) > bound)
    return significant


def theta(y: Array, *, season_length: int, horizon: int) -> SeriesForecast:
    y = np.asarray(y, dtype=float)
    n, t_len = y.shape
    m = season_length
    season = np.zeros((n, max(m, 1)))
    if m > 1 and t_len >= 2 * m:
        seasonal = seasonal_lag_significant(y, m)
        season[seasonal] = seasonal_indices(y[seasonal], m)
    positions = np.arange(t_len) % max(m, 1)
    adjusted = y - season[:, positions]
    fit = fit_model(adjusted, SIMPLE, 1)
    alpha = fit.params.alpha[:, 0]
    x = np.arange(t_len, dtype=float)
    xc = x - x.mean()
    slope = adjusted @ xc / max(float(xc @ xc), 1.0)
    steps = np.arange(1, horizon + 1)
    drift = (
        (steps[None, :] - 1 + 1 / alpha[:, None] - (1 - alpha[:, None]) ** t_len / alpha[:, None])
        * slope[:, None]
        / 2
    )
    future = season[:, (t_len + steps - 1) % max(m, 1)]
    mean = fit.state.level[:, 0, None] + drift + future
    sigma2 = fit.sse / max(t_len - free_parameters(SIMPLE, 1) - 1, 1)
    sigma = np.sqrt(sigma2[:, None] * (1 + (steps[None, :] - 1) * alpha[:, None] ** 2))
    return SeriesForecast(mean, sigma, [THETA] * n)
