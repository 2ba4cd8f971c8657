"""AutoETS with additive errors, fitted to many series at once.

Models (Hyndman's taxonomy, additive error): ANN (simple smoothing), AAN (Holt), AAdN
(damped Holt), and when a series has at least two full seasons ANA, AAA and AAdA. Per
model, the smoothing parameters are chosen on a grid, then on a finer grid around the best
point, every candidate of every series evaluated in one vectorised pass per time step; for
the chosen parameters the initial states are the least-squares ones (the one-step errors of
a linear ETS are affine in its initial states). The model is chosen per series by AICc.

State equations (e one-step error, yhat = l + phi·b + s[t-m]):
    l' = l + phi·b + alpha·e,  b' = phi·b + beta·e,  s' = s[t-m] + gamma·e.
Variance of the h-step forecast: sigma²·(1 + sum_{j<h} c_j²) with
c_j = alpha + beta·(phi + … + phi^j) + gamma·[j mod m = 0].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

ALPHAS = np.array([0.02, 0.08, 0.16, 0.25, 0.35, 0.45, 0.55, 0.7, 0.85, 0.97])
# beta and gamma as fractions of what the usual bounds leave them (beta < alpha,
# gamma < 1 - alpha), so that every grid point is admissible.
BETA_SHARES = np.array([0.02, 0.15, 0.4, 0.8])
GAMMA_SHARES = np.array([0.02, 0.15, 0.4, 0.8])
PHIS = np.array([0.8, 0.9, 0.98])
RIDGE = 1e-8
CHUNK = 500  # series per pass: (series, candidates) arrays stay cache-sized (measured best)


@dataclass(frozen=True)
class Model:
    trend: bool
    damped: bool
    seasonal: bool

    @property
    def name(self) -> str:
        t = ("Ad" if self.damped else "A") if self.trend else "N"
        return f"ETS(A,{t},{'A' if self.seasonal else 'N'})"

    def smoothing_params(self) -> int:
        return 1 + self.trend + self.seasonal + self.damped

    def states(self, m: int) -> int:
        return 1 + self.trend + (m if self.seasonal else 0)


MODELS = tuple(
    Model(trend, damped, seasonal)
    for seasonal in (False, True)
    for trend, damped in ((False, False), (True, False), (True, True))
)


@dataclass
class Params:
    """Smoothing parameters, each (series, candidates)."""

    alpha: Array
    beta: Array
    gamma: Array
    phi: Array

    def take(self, best: npt.NDArray[np.intp]) -> Params:
        rows = np.arange(best.shape[0])
        return Params(*(p[rows, best][:, None] for p in self._all()))

    def _all(self) -> tuple[Array, Array, Array, Array]:
        return self.alpha, self.beta, self.gamma, self.phi


@dataclass
class State:
    level: Array  # (series, candidates)
    trend: Array
    season: Array  # (series, candidates, m); season[..., t % m] is s[t - m] at step t


def _filter(
    y: Array, model: Model, p: Params, s0: State, m: int, *, keep: bool = True
) -> tuple[Array, Array, State]:
    """Sum of squared one-step errors (series, candidates), the errors themselves
    (series, candidates, T; empty unless ``keep``) and the final state. In-place updates
    of contiguous (series, candidates) arrays: this loop is where a run spends its time."""
    n, t_len = y.shape
    shape = np.broadcast_shapes(p.alpha.shape, s0.level.shape)
    level = np.broadcast_to(s0.level, shape).astype(float)
    trend = np.broadcast_to(s0.trend, shape).astype(float)
    seasons = [
        np.broadcast_to(s0.season[..., j], shape).astype(float)
        for j in range(m if model.seasonal else 0)
    ]
    errors = np.empty((*shape, t_len) if keep else (0,))
    sse, e, scratch, phi_b = (np.zeros(shape) for _ in range(4))
    for t in range(t_len):
        if model.trend:
            np.multiply(p.phi, trend, out=phi_b)
            level += phi_b  # now the one-step forecast's level part, l + phi·b
        np.subtract(y[:, t, None], level, out=e)
        if model.seasonal:
            e -= seasons[t % m]
        np.multiply(e, e, out=scratch)
        sse += scratch
        if keep:
            errors[..., t] = e
        np.multiply(p.alpha, e, out=scratch)
        level += scratch
        if model.trend:
            np.multiply(p.beta, e, out=scratch)
            np.add(phi_b, scratch, out=trend)
        if model.seasonal:
            np.multiply(p.gamma, e, out=scratch)
            seasons[t % m] += scratch
    season = np.stack(seasons, axis=-1) if seasons else np.zeros((*shape, max(m, 1)))
    return sse, errors, State(level, trend, season)


def _grid(model: Model) -> list[tuple[float, float, float, float]]:
    betas = BETA_SHARES if model.trend else np.array([0.0])
    gammas = GAMMA_SHARES if model.seasonal else np.array([0.0])
    phis = PHIS if model.damped else np.array([1.0])
    return [(a, a * b, (1 - a) * g, f) for a, b, g, f in product(ALPHAS, betas, gammas, phis)]


def _params(candidates: list[tuple[float, float, float, float]], n: int) -> Params:
    grid = np.array(candidates).T
    return Params(*(np.broadcast_to(row, (n, grid.shape[1])) for row in grid))


def _refined(model: Model, best: Params) -> Params:
    """A finer grid around each series' best point, kept inside the usual bounds."""
    steps = [(-0.5, 0.0, 0.5) if used else (0.0,) for used in _used(model)]
    alpha, beta, gamma, phi = (q[:, 0] for q in best._all())
    beta_share = np.where(alpha > 0, beta / alpha, 0)
    gamma_share = np.where(alpha < 1, gamma / (1 - alpha), 0)
    rows = []
    for da, db, dg, dp in product(*steps):
        a = np.clip(alpha * (1 + da * 0.3), 0.005, 0.995)
        b = a * np.clip(beta_share * (1 + db * 0.5), 0.005, 0.99) * model.trend
        g = (1 - a) * np.clip(gamma_share * (1 + dg * 0.5), 0.005, 0.99) * model.seasonal
        f = np.clip(phi + dp * 0.04, 0.8, 0.98) if model.damped else 1 + 0 * a
        rows.append((a, b, g, f))
    return Params(*(np.stack([r[i] for r in rows], axis=1) for i in range(4)))


def _used(model: Model) -> tuple[bool, bool, bool, bool]:
    return True, model.trend, model.seasonal, model.damped


def _run(y: Array, model: Model, p: Params, s0: State, m: int) -> tuple[Array, State]:
    """The sum of squared one-step errors per (series, candidate), and the final state."""
    sse, _, state = _filter(y, model, p, s0, m, keep=False)
    return sse, state


def seasonal_indices(y: Array, m: int) -> Array:
    """Classical additive decomposition: per position in the season, the mean deviation from
    a centred moving average (2×m when m is even), centred to sum to zero. (series, m)."""
    n, t_len = y.shape
    if m % 2:
        kernel = np.full(m, 1 / m)
    else:
        kernel = np.r_[0.5, np.ones(m - 1), 0.5] / m
    half = len(kernel) // 2
    trend = np.full((n, t_len), np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(y, len(kernel), axis=1)
    trend[:, half : t_len - half] = windows @ kernel
    detrended = y - trend
    sums = np.zeros((n, m))
    counts = np.zeros(m)
    for pos in range(m):
        sums[:, pos] = np.nansum(detrended[:, pos::m], axis=1)
        counts[pos] = np.sum(~np.isnan(trend[0, pos::m])) if n else 1
    means: Array = sums / np.maximum(counts, 1)
    centred: Array = means - means.mean(axis=1, keepdims=True)
    return centred


def heuristic_state(y: Array, model: Model, m: int) -> State:
    """Starting states for the grid (as Hyndman's ``initstate``): seasonal indices from a
    decomposition, then level and trend from a line through the first seasonally adjusted
    observations."""
    n, t_len = y.shape
    season = np.zeros((n, max(m, 1)))
    if model.seasonal:
        season = seasonal_indices(y, m)
    positions = np.arange(t_len) % max(m, 1)
    adjusted = y - season[:, positions]
    first = min(max(10, 2 * m), t_len)
    head = adjusted[:, :first]
    level = head.mean(axis=1)
    trend = np.zeros(n)
    if model.trend and first > 1:
        x = np.arange(1, first + 1, dtype=float)
        xc = x - x.mean()
        trend = (head - level[:, None]) @ xc / (xc @ xc)
        level = level - trend * x.mean()
    return State(level[:, None], trend[:, None], season[:, None, :])


def _basis(model: Model, m: int, n: int) -> list[State]:
    """Unit initial states, one per free initial state: level, trend, and m − 1 seasonal
    states (the last one keeps the seasonal states summing to zero)."""
    size = max(m, 1)

    def state(level: float = 0, trend: float = 0, season: Array | None = None) -> State:
        s = np.zeros(size) if season is None else season
        return State(np.full((n, 1), level), np.full((n, 1), trend), np.tile(s, (n, 1, 1)))

    basis = [state(level=1)]
    if model.trend:
        basis.append(state(trend=1))
    if model.seasonal:
        for j in range(m - 1):
            s = np.zeros(m)
            s[j], s[m - 1] = 1, -1
            basis.append(state(season=s))
    return basis


def least_squares_state(y: Array, model: Model, p: Params, m: int) -> State:
    """The initial states minimising the squared one-step errors for parameters ``p``
    (series, 1): errors = e(y, 0) + Σ c_j·e(0, basis_j) by linearity, so c solves a small
    least-squares problem per series."""
    n = y.shape[0]
    zero_state = State(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros((n, 1, max(m, 1))))
    _, e0, _ = _filter(y, model, p, zero_state, m)
    basis = _basis(model, m, n)
    zeros = np.zeros_like(y)
    columns = np.stack([_filter(zeros, model, p, b, m)[1][:, 0, :] for b in basis], axis=2)
    gram = np.einsum("ntj,ntk->njk", columns, columns)
    gram += RIDGE * np.eye(len(basis)) * (1 + np.trace(gram, axis1=1, axis2=2))[:, None, None]
    rhs = -np.einsum("ntj,nt->nj", columns, e0[:, 0, :])
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    level = sum(coef[:, j, None] * b.level for j, b in enumerate(basis))
    trend = sum(coef[:, j, None] * b.trend for j, b in enumerate(basis))
    season = sum(coef[:, j, None, None] * b.season for j, b in enumerate(basis))
    return State(np.asarray(level), np.asarray(trend), np.asarray(season))


@dataclass(frozen=True)
class Fit:
    model: Model
    params: Params  # (series, 1)
    state: State  # the state after the last observation
    sse: Array  # (series,)


def fit_model(y: Array, model: Model, m: int) -> Fit:
    n = y.shape[0]
    start = heuristic_state(y, model, m)
    coarse = _params(_grid(model), n)
    sse, _ = _run(y, model, coarse, start, m)
    fine = _refined(model, coarse.take(np.argmin(sse, axis=1)))
    sse, _ = _run(y, model, fine, start, m)
    best = fine.take(np.argmin(sse, axis=1))
    initial = least_squares_state(y, model, best, m)
    sse, state = _run(y, model, best, initial, m)
    return Fit(model, best, state, sse[:, 0])


def free_parameters(model: Model, m: int) -> int:
    """Smoothing parameters, free initial states and the error variance, as AICc counts."""
    seasonal_free = m - 1 if model.seasonal else 0
    return model.smoothing_params() + 1 + model.trend + seasonal_free + 1


def aicc(sse: Array, n_obs: int, k: int) -> Array:
    scale = np.maximum(sse / n_obs, 1e-12)
    if n_obs - k - 1 <= 0:
        return np.full(sse.shape, np.inf)
    return n_obs * np.log(scale) + 2 * k + 2 * k * (k + 1) / (n_obs - k - 1)


@dataclass(frozen=True)
class SeriesForecast:
    """h-step forecasts of many series: mean and standard deviation (series, h), and the
    method that made each series' forecast."""

    mean: Array
    sigma: Array
    methods: list[str]


def _forecast(
    fit: Fit, rows: npt.NDArray[np.intp], t_len: int, m: int, h: int
) -> tuple[Array, Array]:
    p = fit.params
    alpha, beta, gamma, phi = (q[rows, 0] for q in p._all())
    level, trend = fit.state.level[rows, 0], fit.state.trend[rows, 0]
    steps = np.arange(1, h + 1)
    phi_h = np.cumsum(phi[:, None] ** steps, axis=1) if fit.model.trend else 0 * steps
    mean = level[:, None] + (trend[:, None] * phi_h if fit.model.trend else 0)
    c = alpha[:, None] + (beta[:, None] * phi_h if fit.model.trend else 0 * steps)
    if fit.model.seasonal:
        mean = mean + fit.state.season[rows, 0][:, (t_len + steps - 1) % m]
        c = c + gamma[:, None] * (steps % m == 0)
    k = free_parameters(fit.model, m)
    sigma2 = fit.sse[rows] / max(t_len - k - 1, 1)
    # c_j for j = 1 … h − 1 feeds the variance of step j + 1.
    cum = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(c[:, :-1] ** 2, axis=1)], axis=1)
    return mean, np.sqrt(sigma2[:, None] * (1 + cum))


def admissible(model: Model, t_len: int, m: int) -> bool:
    if model.seasonal and (m < 2 or t_len < 2 * m):
        return False
    # Simple smoothing is always there to fall back on; others need AICc to be defined.
    return not (model.trend or model.seasonal) or t_len - free_parameters(model, m) - 1 > 0


def auto_ets(y: Array, *, season_length: int, horizon: int) -> SeriesForecast:
    """Fit every admissible model to every series (rows of ``y``), keep each series' best
    by AICc, forecast ``horizon`` steps."""
    return _chunked(y, lambda chunk: _auto_chunk(chunk, season_length, horizon))


def ets_forecast(y: Array, *, model: Model, season_length: int, horizon: int) -> SeriesForecast:
    """One given model for every series."""

    def one(chunk: Array) -> SeriesForecast:
        fit = fit_model(chunk, model, season_length)
        rows = np.arange(len(chunk))
        mean, sigma = _forecast(fit, rows, chunk.shape[1], season_length, horizon)
        return SeriesForecast(mean, sigma, [model.name] * len(chunk))

    return _chunked(y, one)


def _chunked(y: Array, forecast: Callable[[Array], SeriesForecast]) -> SeriesForecast:
    parts = [
        forecast(np.asarray(y[start : start + CHUNK], dtype=float))
        for start in range(0, y.shape[0], CHUNK)
    ]
    return SeriesForecast(
        np.concatenate([p.mean for p in parts]),
        np.concatenate([p.sigma for p in parts]),
        [name for p in parts for name in p.methods],
    )


def _auto_chunk(y: Array, m: int, h: int) -> SeriesForecast:
    n, t_len = y.shape
    candidates = [model for model in MODELS if admissible(model, t_len, m)]
    fits = [fit_model(y, model, m) for model in candidates]
    scores = np.stack([aicc(f.sse, t_len, free_parameters(f.model, m)) for f in fits])
    scores[~np.isfinite(scores)] = np.inf
    chosen = np.argmin(scores, axis=0)
    mean, sigma = np.empty((n, h)), np.empty((n, h))
    for i, fit in enumerate(fits):
        rows = np.flatnonzero(chosen == i)
        if rows.size:
            mean[rows], sigma[rows] = _forecast(fit, rows, t_len, m, h)
    return SeriesForecast(mean, sigma, [fits[i].model.name for i in chosen])
