"""Rolling-origin replay: as of the first day of each period, every method forecasts the
period's bookings from what was known then, for every scope; the blend weighs them by how
they did at the earlier origins.

The methods and the blend are the forecast service's own (domain/method.py: the same code a
forecast run publishes with): ``pipeline`` (deals open at the origin × P(win) × P(close
within the period) × the quarter's rhythm × amount, plus not yet created in the rhythm),
``auto_ets``, ``theta``, ``seasonal_run_rate`` and ``seasonal_naive`` on the scope's
bookings per period (series/methods); the blend of those five, every scope with the weights
the company's last ``ORIGINS`` earlier origins give (as a service run weighs every scope).
The deal table is seen as the service would see the Maven import: a day's events at noon
UTC, and "as of day d" at midnight starting it (nothing of day d is known).
Baselines: ``naive`` (same as last period), ``mean_3`` (mean of the last three periods) and
``stage_weighted`` (open deals × a fixed probability for their stage; the sample's open
deals are all Engaging until closed, and have no expected close date, so every one counts in
the current period, as the service counts undated deals); seasonal naive is a baseline and
a member of the blend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from salesops_forecast.backtest.deals import DealTable
from salesops_forecast.backtest.win_odds import WinOdds
from salesops_forecast.domain.blend import Origin, Rule
from salesops_forecast.domain.method import (
    DAY,
    MIN_HISTORY,
    PIPELINE,
    AsOf,
    DealHistory,
    PipelineEstimate,
    blend_points,
    estimates,
    midnight,
    pipeline_estimate,
    series_at,
    weights_at,
)
from salesops_forecast.domain.pipeline_model import (
    Array,
    Bookings,
    Days,
    Period,
    PeriodKind,
    periods_between,
)
from salesops_forecast.series.baselines import mean_of_last, naive
from salesops_forecast.series.methods import SERIES_METHODS

BLEND = "blend"
BLENDED = (PIPELINE, *SERIES_METHODS)
BASELINES = ("naive", "mean_3", "stage_weighted")
FIXED_STAGE_PROBABILITY = {"Prospecting": 0.1, "Engaging": 0.4}
NOON = 0.5 * DAY
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
    # per origin, the company's forecast by each blended method that forecast it
    company: list[dict[str, float]] = field(default_factory=list)
    series: Array = field(default_factory=lambda: np.zeros((0, 0)))

    def method_forecasts(self, method: str) -> Array:
        """(origins, scopes)."""
        return np.stack(self.forecasts[method])

    def actuals(self) -> Array:
        return np.stack(self.actual)


def _noon(values: Days) -> Array:
    """A day's events at noon UTC, in POSIX seconds (NaN: no day)."""
    out = np.full(len(values), np.nan)
    known = ~np.isnat(values)
    out[known] = values[known].astype("datetime64[s]").astype(np.int64) + NOON
    return out


def deal_history(deals: DealTable, scopes: Scopes) -> DealHistory:
    """The deal table as the forecast method takes it: open deals at their list price (the
    sample's only amount for an open deal), won ones booking their close value."""
    return DealHistory(
        created=_noon(deals.engaged),
        closed=_noon(deals.closed),
        won=deals.won,
        booked=deals.value,
        amount=deals.list_price,
        expected_close=np.full(len(deals), np.datetime64("NaT"), dtype="datetime64[D]"),
        levels=scopes.rows,
        groups=len(scopes),
    )


def bookings_of(deals: DealTable, scopes: Scopes) -> Bookings:
    return deal_history(deals, scopes).bookings


@dataclass(frozen=True)
class _Origin:
    deals: DealTable
    history: DealHistory
    scopes: Scopes
    at: AsOf
    win_odds: WinOdds

    @property
    def start(self) -> np.datetime64:
        return np.datetime64(self.at.period[0], "D")


def _pipeline(o: _Origin) -> tuple[PipelineEstimate, Array]:
    """The method's pipeline estimate, and the fixed-stage baseline, per scope."""
    deals, start = o.deals, o.start
    trained = deals.closed_before(start) & ~np.isnat(deals.engaged)
    open_now = deals.open_at(start)
    p_win = np.zeros(len(deals))
    p_win[open_now] = o.win_odds(deals, train=trained, score=open_now, as_of=start)
    fixed = o.scopes.total(
        FIXED_STAGE_PROBABILITY["Engaging"] * deals.list_price[open_now], open_now
    )
    return pipeline_estimate(o.history, p_win, o.at), fixed


def _baselines(y: Array) -> dict[str, Array]:
    return {
        "naive": naive(y, horizon=1).mean[:, 0],
        "mean_3": mean_of_last(y, horizon=1).mean[:, 0],
    }


def replay(
    deals: DealTable,
    *,
    kind: PeriodKind,
    win_odds: WinOdds,
    progress: Callable[[str], None] = lambda _: None,
) -> Replay:
    scopes = Scopes.of(deals)
    history = deal_history(deals, scopes)
    closes = deals.closed[~np.isnat(deals.closed)]
    first, last = closes.min().astype(date), closes.max().astype(date)
    periods = periods_between(first, last, kind)
    series = history.bookings.series(periods, groups=len(scopes))
    result = Replay(kind, periods, scopes, series=series)
    for k in range(MIN_HISTORY, len(periods)):
        progress(f"{kind} {periods[k][0]}")
        at = AsOf(midnight(periods[k][0]), periods[k], periods[:k], rhythm=True)
        _replay_origin(result, _Origin(deals, history, scopes, at, win_odds), k)
    return result


def _replay_origin(result: Replay, origin: _Origin, k: int) -> None:
    y = result.series[:, :k]
    pipeline, fixed = _pipeline(origin)
    found = estimates(pipeline, series_at(y, frequency=result.kind, horizon=1))
    # One set of weights, from the company's earlier origins, for every scope: as the
    # service weighs a run (reps have too few bookings for weights of their own).
    done = zip(result.company, result.actual, strict=True)
    past = [Origin(f, float(a[COMPANY])) for f, a in done]
    weights, rule = weights_at(past)
    result.rules.append(rule)
    result.company_weights.append(weights)
    blended = {m: found[m] for m in BLENDED if m in found}
    # A method that could not forecast here (seasonal naive before a full season) is NaN.
    values = {name: np.full(len(result.scopes), np.nan) for name in BLENDED}
    values |= {name: point for name, (point, _) in found.items()}
    values[BLEND] = blend_points(blended, weights)[0]
    values |= _baselines(y)
    values["stage_weighted"] = fixed
    result.company.append({m: float(p[COMPANY]) for m, (p, _) in blended.items()})
    result.origins.append(k)
    result.actual.append(result.series[:, k])
    for name, v in values.items():
        result.forecasts.setdefault(name, []).append(v)


def methods(result: Replay) -> list[str]:
    """Every method the replay scored, blend and its members first, then the baselines."""
    ordered = [BLEND, *BLENDED, *BASELINES]
    return [m for m in ordered if m in result.forecasts and _complete(result, m)]


def _complete(result: Replay, method: str) -> bool:
    forecasts = result.forecasts[method]
    return len(forecasts) == len(result.origins) and bool(np.isfinite(forecasts).all())
