"""Rolling-origin replay: as of the first day of each period, every method forecasts the
period's bookings from what was known then, for every scope; the blend weighs them by how
they did at the earlier origins.

Methods: ``pipeline`` (deals open at the origin × P(win) × P(close within the period) ×
the quarter's rhythm × list price × the won-to-list-price ratio so far, plus the
not-yet-created bookings of past periods at the same place in the quarter),
``auto_ets``, ``theta`` and ``seasonal_run_rate`` on the scope's bookings per period (see
series/methods); the blend of those four, every scope with the weights the company's
earlier origins give (as a service run weighs every scope).
Baselines: ``naive`` (same as last period), ``mean_3`` (mean of the last three periods),
``seasonal_naive`` and ``stage_weighted`` (open deals × a fixed probability for their stage;
the sample's open deals are all Engaging until closed, and have no expected close date, so
every one counts in the current period, as the service counts undated deals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from salesops_forecast.backtest.deals import DealTable
from salesops_forecast.backtest.win_odds import WinOdds
from salesops_forecast.domain.blend import Estimate, Origin, Rule, blend, out_of_sample_weights
from salesops_forecast.domain.pipeline_model import (
    Array,
    Bookings,
    Period,
    PeriodKind,
    close_within,
    in_rhythm,
    not_yet_created,
    periods_between,
    same_place,
)
from salesops_forecast.series.baselines import mean_of_last, naive, seasonal_naive
from salesops_forecast.series.ets import SeriesForecast
from salesops_forecast.series.methods import SERIES_METHODS, series_forecasts
from salesops_forecast.series.seasons import season_length

PIPELINE, BLEND = "pipeline", "blend"
BLENDED = (PIPELINE, *SERIES_METHODS)
PRIOR_BLEND = (PIPELINE,)  # weighs the first origins, before any method is scored
BASELINES = ("naive", "mean_3", "seasonal_naive", "stage_weighted")
FIXED_STAGE_PROBABILITY = {"Prospecting": 0.1, "Engaging": 0.4}
MIN_HISTORY = 3  # periods of bookings before an origin is scored
COMPANY = 0  # the company's scope group


@dataclass(frozen=True)
class Scopes:
    """Group 0 is the company, then each regional office (team), then each agent (rep)."""

    names: list[tuple[str, str | None]]
    rows: list[np.ndarray]  # per deal, its group in the company, team and rep levels

    @classmethod
    def of(cls, deals: DealTable) -> Scopes:
        offices, agents = sorted(set(deals.office)), sorted(set(deals.agent))
        names = [("company", None)] + [("team", o) for o in offices]
        names += [("rep", a) for a in agents]
        team_index = {o: 1 + i for i, o in enumerate(offices)}
        rep_index = {a: 1 + len(offices) + i for i, a in enumerate(agents)}
        rows = [
            np.zeros(len(deals), dtype=np.intp),
            np.array([team_index[o] for o in deals.office], dtype=np.intp),
            np.array([rep_index[a] for a in deals.agent], dtype=np.intp),
        ]
        return cls(names, rows)

    def __len__(self) -> int:
        return len(self.names)

    def total(self, per_deal: Array, mask: np.ndarray) -> Array:
        out = np.zeros(len(self))
        for r in self.rows:
            out += np.bincount(r[mask], weights=per_deal, minlength=len(self))
        return out


@dataclass
class Replay:
    kind: PeriodKind
    periods: list[Period]
    scopes: Scopes
    origins: list[int] = field(default_factory=list)  # indexes into periods
    actual: list[Array] = field(default_factory=list)  # per origin, per scope
    forecasts: dict[str, list[Array]] = field(default_factory=dict)
    company_weights: list[dict[str, float]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)  # per origin, the blend's chosen rule
    series: Array = field(default_factory=lambda: np.zeros((0, 0)))

    def method_forecasts(self, method: str) -> Array:
        """(origins, scopes)."""
        return np.stack(self.forecasts[method])

    def actuals(self) -> Array:
        return np.stack(self.actual)


def bookings_of(deals: DealTable, scopes: Scopes) -> Bookings:
    won = deals.won & ~np.isnat(deals.closed)
    return Bookings(
        created=np.concatenate([deals.engaged[won]] * 3),
        closed=np.concatenate([deals.closed[won]] * 3),
        amount=np.concatenate([deals.value[won]] * 3),
        group=np.concatenate([r[won] for r in scopes.rows]),
    )


@dataclass(frozen=True)
class _Origin:
    deals: DealTable
    scopes: Scopes
    bookings: Bookings
    history: list[Period]
    period: Period
    win_odds: WinOdds

    @property
    def start(self) -> np.datetime64:
        return np.datetime64(self.period[0], "D")


def _pipeline(o: _Origin) -> tuple[Array, Array, Array]:
    """Pipeline model point and sigma, and the fixed-stage baseline, per scope."""
    deals, start = o.deals, o.start
    trained = deals.closed_before(start) & ~np.isnat(deals.engaged)
    open_now = deals.open_at(start)
    p_win = o.win_odds(deals, train=trained, score=open_now, as_of=start)
    cycles = (deals.closed[trained] - deals.engaged[trained]).astype(float)
    ages = (start - deals.engaged[open_now]).astype(float)
    window = float((o.period[1] - o.period[0]).days + 1)
    p_close = close_within(ages, window, cycles, still_open=ages)
    won_before = trained & deals.won
    realised = deals.value[won_before].sum() / max(deals.list_price[won_before].sum(), 1.0)
    amount = deals.list_price[open_now] * realised
    p = np.minimum(p_win * p_close * _rhythm(o), 1.0)
    groups = len(o.scopes)
    nyc = not_yet_created(o.bookings, past=o.history, offset=timedelta(0), groups=groups)
    same = same_place(o.history, o.period)
    nyc = in_rhythm(nyc, o.bookings, same=same, offset=timedelta(0), groups=groups)
    point = o.scopes.total(p * amount, open_now) + nyc.mean
    variance = o.scopes.total(p * (1 - p) * amount**2, open_now) + nyc.sigma**2
    fixed = o.scopes.total(
        FIXED_STAGE_PROBABILITY["Engaging"] * deals.list_price[open_now], open_now
    )
    return point, np.sqrt(variance), fixed


def _rhythm(o: _Origin) -> float:
    """The quarter's rhythm in open deals closing: how much of the open deals' list value
    was won within past periods at the same place in the quarter as this one (first, second
    or third month), against within all past periods; 1 when no past period is at the same
    place. Learned from periods before the origin only."""
    same = same_place(o.history, o.period)
    if not same:
        return 1.0
    overall = _won_from_open(o.deals, o.history)
    return _won_from_open(o.deals, same) / overall if overall > 0 else 1.0


def _won_from_open(deals: DealTable, periods: list[Period]) -> float:
    won, open_value = 0.0, 0.0
    for first, last in periods:
        start = np.datetime64(first, "D")
        open_then = deals.open_at(start)
        won += deals.value[open_then & deals.won & (deals.closed <= np.datetime64(last, "D"))].sum()
        open_value += deals.list_price[open_then].sum()
    return won / open_value if open_value else 0.0


def _series(y: Array, kind: PeriodKind) -> dict[str, SeriesForecast]:
    m = season_length(kind, y.shape[1])
    out = {
        **series_forecasts(y, frequency=kind, horizon=1),
        "naive": naive(y, horizon=1),
        "mean_3": mean_of_last(y, horizon=1),
    }
    if y.shape[1] >= m:
        out["seasonal_naive"] = seasonal_naive(y, season_length=m, horizon=1)
    return out


def replay(
    deals: DealTable,
    *,
    kind: PeriodKind,
    win_odds: WinOdds,
    progress: Callable[[str], None] = lambda _: None,
) -> Replay:
    scopes = Scopes.of(deals)
    bookings = bookings_of(deals, scopes)
    closes = deals.closed[~np.isnat(deals.closed)]
    first, last = closes.min().astype(date), closes.max().astype(date)
    periods = periods_between(first, last, kind)
    result = Replay(kind, periods, scopes, series=bookings.series(periods, groups=len(scopes)))
    for k in range(MIN_HISTORY, len(periods)):
        progress(f"{kind} {periods[k][0]}")
        origin = _Origin(deals, scopes, bookings, periods[:k], periods[k], win_odds)
        _replay_origin(result, origin, k)
    return result


def _replay_origin(result: Replay, origin: _Origin, k: int) -> None:
    y = result.series[:, :k]
    series = _series(y, result.kind)
    point, sigma, fixed = _pipeline(origin)
    found: dict[str, Array] = {PIPELINE: point, "stage_weighted": fixed}
    spreads: dict[str, Array] = {PIPELINE: sigma}
    for name, f in series.items():
        found[name] = f.mean[:, 0]
        spreads[name] = f.sigma[:, 0]
    # One set of weights, from the company's earlier origins, for every scope: as the
    # service weighs a run (reps have too few bookings for weights of their own).
    past = [
        Origin({m: float(result.forecasts[m][i][COMPANY]) for m in BLENDED}, float(a[COMPANY]))
        for i, a in enumerate(result.actual)
    ]
    weights, rule = out_of_sample_weights(past, fallback=PRIOR_BLEND)
    result.rules.append(rule)
    result.company_weights.append(weights)
    found[BLEND] = np.array(
        [
            blend(
                [Estimate(m, float(found[m][g]), float(spreads[m][g])) for m in BLENDED], weights
            ).point
            for g in range(len(result.scopes))
        ]
    )
    result.origins.append(k)
    result.actual.append(result.series[:, k])
    for name, values in found.items():
        result.forecasts.setdefault(name, []).append(values)


def methods(result: Replay) -> list[str]:
    """Every method the replay scored, blend and its members first, then the baselines."""
    ordered = [BLEND, *BLENDED, *BASELINES]
    return [m for m in ordered if m in result.forecasts and _complete(result, m)]


def _complete(result: Replay, method: str) -> bool:
    return len(result.forecasts[method]) == len(result.origins)
