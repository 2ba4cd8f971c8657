"""The blend of a forecast run, by the method the backtest measures (domain/method.py, the
same code): each scope and period gets the pipeline estimate (won so far + open deals ×
P(win) × P(close in what is left of the period) × the quarter's rhythm for a month + not
yet created) and the time-series methods on its monthly bookings (series/methods), weighted
by how each did for the company at the last ``ORIGINS`` complete months that have three
months of bookings before them.

At each of those months the run forecasts as the backtest does at an origin: as of the
month's first instant, the deal model is fitted on the deals closed before it and scores the
deals open then (``fit_and_score``), the pipeline estimate is made from them, and the series
methods forecast from the months before. What the service cannot replay as it was: a deal's
amount, expected close date and stage (it keeps only their newest values; a lost deal whose
amount was rewritten to 0 counts at a past origin with its product's median amount).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from uuid import UUID

import numpy as np

from salesops_forecast.domain.blend import Estimate, Origin, blend
from salesops_forecast.domain.facts import DealFacts
from salesops_forecast.domain.forecast import (
    COMPANY,
    STAGE_WEIGHTED_PIPELINE,
    Z_80,
    Z_95,
    Figures,
    Scope,
    ScopeForecast,
    money,
    scopes_of,
)
from salesops_forecast.domain.method import (
    MIN_HISTORY,
    ORIGINS,
    AsOf,
    DealHistory,
    PipelineEstimate,
    estimates,
    midnight,
    pipeline_estimate,
    seconds,
    series_at,
    weights_at,
)
from salesops_forecast.domain.periods import FiscalPeriod, fiscal_quarter
from salesops_forecast.domain.pipeline_model import Array, Period, days, periods_between
from salesops_forecast.domain.probabilities import NoClosedDeals
from salesops_forecast.domain.win_probability import fit_and_score
from salesops_forecast.series.ets import SeriesForecast

SERIES_MONTHS = 36
LEVELS = ("company", "territory", "team", "rep")


@dataclass(frozen=True)
class Blended:
    forecast: ScopeForecast
    methods: dict[str, float]
    method_points: dict[str, Decimal]


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


async def blend_run(
    *,
    planned: Sequence[ScopeForecast],
    facts: Sequence[DealFacts],
    win: Mapping[UUID, float],
    as_of: datetime,
    currency: str,
    start_month: int,
    pipeline_method: str = STAGE_WEIGHTED_PIPELINE,
) -> list[Blended]:
    """``facts``: every deal (with its territory); ``win``: P(win) of each open deal as of
    ``as_of`` by deal id, from the run's deal model. ``pipeline_method`` names the
    pipeline's estimate by how its open deals were weighed. CPU work: in a worker thread."""
    return await asyncio.to_thread(
        blend_forecasts,
        planned,
        facts=facts,
        win=win,
        as_of=as_of,
        currency=currency,
        start_month=start_month,
        pipeline_method=pipeline_method,
    )


def blend_forecasts(
    planned: Sequence[ScopeForecast],
    *,
    facts: Sequence[DealFacts],
    win: Mapping[UUID, float],
    as_of: datetime,
    currency: str,
    start_month: int,
    pipeline_method: str = STAGE_WEIGHTED_PIPELINE,
) -> list[Blended]:
    run = _Run.of(
        facts,
        planned,
        as_of=as_of,
        currency=currency,
        start_month=start_month,
        name=pipeline_method,
    )
    weights = run.weights(facts)
    p_now = run.p_win(win)
    return [run.blend(p, weights, p_now) for p in planned]


def _in_currency(deal: DealFacts, currency: str) -> bool:
    return deal.currency is None or deal.currency.upper() == currency.upper()


def _open_amounts(deals: Sequence[DealFacts]) -> Array:
    """What each deal would book while open: its amount, except a lost deal's amount of 0 or
    less (CRMs rewrite it to the close value), which counts as its product's median amount."""
    positive: dict[str | None, list[float]] = {}
    for d in deals:
        if d.amount is not None and d.amount > 0:
            positive.setdefault(d.product, []).append(d.amount)
    overall = median([a for v in positive.values() for a in v]) if positive else 0.0
    typical = {p: median(v) for p, v in positive.items()}
    return np.array(
        [
            typical.get(d.product, overall)
            if d.outcome == "lost" and (d.amount or 0) <= 0
            else (d.amount if d.amount is not None else np.nan)
            for d in deals
        ]
    )


@dataclass(frozen=True)
class _Run:
    as_of: datetime
    start_month: int
    name: str  # the pipeline estimate's method name
    ids: list[UUID]  # deal ids, the rows of ``history``
    scopes: dict[Scope, int]
    history: DealHistory
    months: list[Period]  # complete months with bookings history, oldest first
    series: dict[str, SeriesForecast]  # h = 1 … 3 from every complete month; {} if too few
    series_rows: Array  # bookings (scopes, months)
    pipelines: dict[Period, PipelineEstimate] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        facts: Sequence[DealFacts],
        planned: Sequence[ScopeForecast],
        *,
        as_of: datetime,
        currency: str,
        start_month: int,
        name: str,
    ) -> _Run:
        counted = [d for d in facts if _in_currency(d, currency) and d.amount is not None]
        scopes = {s: i for i, s in enumerate(dict.fromkeys(p.scope for p in planned))}
        scopes.setdefault(COMPANY, len(scopes))
        levels = np.full((len(LEVELS), len(counted)), -1, dtype=np.intp)
        for row, deal in enumerate(counted):
            for scope in scopes_of(deal):
                if scope in scopes:
                    levels[LEVELS.index(scope.kind), row] = scopes[scope]
        history = DealHistory(
            created=np.array([seconds(d.created_at or d.first_seen_at) for d in counted]),
            closed=np.array([seconds(d.closed_at) if d.closed else np.nan for d in counted]),
            won=np.array([d.outcome == "won" for d in counted], dtype=bool),
            booked=np.array([float(d.amount or 0) for d in counted]),
            amount=_open_amounts(counted),
            expected_close=days([d.expected_close_date for d in counted]),
            levels=list(levels),
            groups=len(scopes),
            created_known=np.array([d.created_at is not None for d in counted], dtype=bool),
        )
        bookings = history.bookings
        this_month = _month_start(as_of.astimezone(UTC).date())
        booked = bookings.closed[~np.isnat(bookings.closed)]
        first = booked.min().astype(date) if booked.size else this_month
        months = periods_between(
            max(first, _month_start(this_month, SERIES_MONTHS)),
            this_month - timedelta(days=1),
            "month",
        )
        months = [m for m in months if m[0] < this_month]
        rows = bookings.series(months, groups=len(scopes))
        series = series_at(rows, frequency="month", horizon=3) if len(months) >= MIN_HISTORY else {}
        ids: list[UUID] = [d.deal_id for d in counted]
        return cls(as_of, start_month, name, ids, scopes, history, months, series, rows)

    def p_win(self, win: Mapping[UUID, float]) -> Array:
        return np.array([win.get(i, 0.0) for i in self.ids])

    def weights(self, facts: Sequence[DealFacts]) -> dict[str, float]:
        """Weights from the company's last complete months, each forecast as of its first
        instant by the method (module doc), by the rule those months choose out of sample."""
        company = self.scopes[COMPANY]
        origins = []
        for k in range(max(MIN_HISTORY, len(self.months) - ORIGINS), len(self.months)):
            month = self.months[k]
            at = AsOf(midnight(month[0]), month, self.months[:k], True, self.start_month)
            y = self.series_rows[company : company + 1, :k]
            series = series_at(y, frequency="month", horizon=1)
            try:
                _, scored = fit_and_score(facts, as_of=at.as_of, periods=(), reasons=False)
            except NoClosedDeals:
                pipeline = None
            else:
                win = dict(zip(scored.deal_ids, scored.win.tolist(), strict=True))
                pipeline = pipeline_estimate(self.history, self.p_win(win), at)
            found = estimates(
                pipeline or _nothing(self.history.groups),
                series,
                pipeline_name=self.name,
                rows=[company],
            )
            if pipeline is None:
                del found[self.name]
            forecasts = {m: float(point[0]) for m, (point, _) in found.items()}
            origins.append(Origin(forecasts, float(self.series_rows[company, k])))
        weights, _ = weights_at(origins, fallback=(self.name,))
        return weights

    def blend(self, planned: ScopeForecast, weights: dict[str, float], p_now: Array) -> Blended:
        g = self.scopes[planned.scope]
        pipeline = self._pipeline(planned.period, p_now)
        won = float(pipeline.won[g])
        found = (
            estimates(pipeline, self.series, pipeline_name=self.name)
            if planned.period.kind == "month"
            else self._quarter(pipeline)
        )
        b = blend([Estimate(m, float(p[g]), float(s[g])) for m, (p, s) in found.items()], weights)
        figures = _figures(b.point, b.sigma, floor=won, like=planned.figures)
        return Blended(
            dataclasses.replace(planned, figures=figures),
            dict(b.weights),
            {m: money(Decimal(repr(v))) for m, v in b.points.items()},
        )

    def _pipeline(self, period: FiscalPeriod, p_now: Array) -> PipelineEstimate:
        span = _span(period)
        if span not in self.pipelines:
            at = AsOf(
                self.as_of,
                span,
                self._past(period),
                rhythm=period.kind == "month",
                start_month=self.start_month,
            )
            self.pipelines[span] = pipeline_estimate(self.history, p_now, at)
        return self.pipelines[span]

    def _past(self, period: FiscalPeriod) -> list[Period]:
        """The complete periods of the same kind before this one, within the history."""
        if period.kind == "month":
            return self.months
        first = self.months[0][0] if self.months else period.starts_on
        quarters: list[Period] = []
        end = period.starts_on - timedelta(days=1)
        while end >= first:
            q = fiscal_quarter(end, start_month=self.start_month)
            if q.starts_on < first:
                break
            quarters.insert(0, _span(q))
            end = q.starts_on - timedelta(days=1)
        return quarters

    def _quarter(self, pipeline: PipelineEstimate) -> dict[str, tuple[Array, Array]]:
        """The quarter's series estimates: its complete months as booked, plus the forecasts
        of the rest; never below what is already won in it."""
        this_month = _month_start(self.as_of.astimezone(UTC).date())
        out = {self.name: (pipeline.point, pipeline.sigma)}
        quarter = fiscal_quarter(self.as_of.astimezone(UTC).date(), start_month=self.start_month)
        ahead = _months(quarter.ends_on) - _months(this_month) + 1
        before = np.zeros(self.history.groups)
        if quarter.starts_on < this_month:
            span = (quarter.starts_on, this_month - timedelta(days=1))
            before = self.history.bookings.booked(span, groups=self.history.groups)
        for name, f in self.series.items():
            point = np.maximum(pipeline.won, before + f.mean[:, :ahead].sum(axis=1))
            out[name] = (point, f.sigma[:, :ahead].sum(axis=1))
        return out


def _nothing(groups: int) -> PipelineEstimate:
    zero = np.zeros(groups)
    return PipelineEstimate(zero, zero, zero)


def _months(day: date) -> int:
    return day.year * 12 + day.month


def _span(period: FiscalPeriod) -> Period:
    return period.starts_on, period.ends_on


def _figures(point: float, sigma: float, *, floor: float, like: Figures) -> Figures:
    """The blend's point and intervals (never below what the period has already booked);
    categories and deal counts stay the open pipeline's."""

    def bound(z: Decimal) -> tuple[Decimal, Decimal]:
        spread = float(z) * sigma
        return _money(max(floor, point - spread)), _money(point + spread)

    lo80, hi80 = bound(Z_80)
    lo95, hi95 = bound(Z_95)
    return dataclasses.replace(
        like,
        point=_money(point),
        lo80=lo80,
        hi80=hi80,
        lo95=lo95,
        hi95=hi95,
        sigma=Decimal(repr(sigma)),
    )


def _money(value: float) -> Decimal:
    return money(Decimal(repr(float(value))))
