"""The blend of a forecast run: each scope and period gets the stage-weighted pipeline
(bookings won so far + open deals × stage probability + not yet created), AutoETS, Theta
and the seasonal run-rate on its monthly bookings (series/methods), weighted by a backtest
of the company's last months.

Backtest: as of the first day of each of the last six complete months that have three
months of bookings before them, the pipeline method is replayed (deals open then, counted
if their expected close date is in that month or unknown, × the win rate of the deals
closed before it, + not yet created), and the series methods forecast from the months
before; the weights (inverse WAPE^power, methods beyond a cut-off times the best one's
WAPE trimmed to 0, power and cut-off chosen by a nested rolling origin over those months,
see domain/blend) apply to every scope and to months and quarters alike.
The replay knows no stage history, and uses today's expected close dates: the service keeps
only a deal's newest expected close date, not what it was at each month's start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_forecast.adapters import history
from salesops_forecast.domain.blend import Estimate, Origin, blend, out_of_sample_weights
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
from salesops_forecast.domain.periods import FiscalPeriod, fiscal_quarter
from salesops_forecast.domain.pipeline_model import (
    Array,
    Bookings,
    MonthCloses,
    PastDeal,
    Period,
    days,
    not_yet_created,
    periods_between,
)
from salesops_forecast.domain.territories import deal_territory
from salesops_forecast.series.ets import SeriesForecast
from salesops_forecast.series.methods import series_forecasts

SERIES_MONTHS = 36
MIN_SERIES_MONTHS = 3
BACKTEST_ORIGINS = 6


@dataclass(frozen=True)
class Blended:
    forecast: ScopeForecast
    methods: dict[str, float]
    method_points: dict[str, Decimal]


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


async def blend_run(
    session: AsyncSession,
    *,
    planned: Sequence[ScopeForecast],
    as_of: datetime,
    currency: str,
    start_month: int,
    pipeline_method: str = STAGE_WEIGHTED_PIPELINE,
    primary_territories: Mapping[UUID, str] | None = None,
) -> list[Blended]:
    """``pipeline_method`` names the pipeline's estimate: how its open deals were weighed
    (the backtest replays it with the closed deals' win rate either way). A past deal's
    territory is its account's, or else its owner's in ``primary_territories``."""
    since = datetime.combine(_month_start(as_of.date(), SERIES_MONTHS), datetime.min.time(), UTC)
    primary = primary_territories or {}
    deals = [
        dataclasses.replace(d, territory=deal_territory(d.territory, d.owner_id, primary))
        for d in await history.deals_since(session, since=since)
    ]
    closes = await history.closes_by_month(session)
    history_of = _History.of(
        deals, planned, as_of=as_of, currency=currency, pipeline_method=pipeline_method
    )
    weights = history_of.weights(closes)
    return [history_of.blend(p, weights, start_month=start_month) for p in planned]


def _in_currency(deal: PastDeal, currency: str) -> bool:
    return deal.currency is None or deal.currency.upper() == currency.upper()


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment else None


@dataclass(frozen=True)
class _History:
    as_of: datetime
    deals: list[PastDeal]
    scopes: dict[Scope, int]
    bookings: Bookings
    months: list[Period]  # complete months with bookings history, oldest first
    series: dict[str, SeriesForecast]  # h = 1 … 3 from every complete month; {} if too few
    series_rows: Array  # bookings (scopes, months)
    pipeline_method: str

    @classmethod
    def of(
        cls,
        deals: list[PastDeal],
        planned: Sequence[ScopeForecast],
        *,
        as_of: datetime,
        currency: str,
        pipeline_method: str,
    ) -> _History:
        counted = [d for d in deals if _in_currency(d, currency) and d.amount is not None]
        scopes = {s: i for i, s in enumerate(dict.fromkeys(p.scope for p in planned))}
        scopes.setdefault(COMPANY, len(scopes))
        bookings = _bookings([d for d in counted if d.outcome == "won"], scopes)
        this_month = _month_start(as_of.date())
        booked = bookings.closed[~np.isnat(bookings.closed)]
        first = booked.min().astype(date) if booked.size else this_month
        months = periods_between(
            max(first, _month_start(this_month, SERIES_MONTHS)),
            this_month - timedelta(days=1),
            "month",
        )
        months = [m for m in months if m[0] < this_month]
        rows = bookings.series(months, groups=len(scopes))
        series = _series(rows, horizon=3) if len(months) >= MIN_SERIES_MONTHS else {}
        return cls(as_of, counted, scopes, bookings, months, series, rows, pipeline_method)

    def weights(self, closes: Sequence[MonthCloses]) -> dict[str, float]:
        """Weights from the company's last complete months, by the rule those months choose
        out of sample (module doc)."""
        company = self.scopes[COMPANY]
        origins = []
        first = max(MIN_SERIES_MONTHS, len(self.months) - BACKTEST_ORIGINS)
        for k in range(first, len(self.months)):
            found = {
                name: float(f.mean[0, 0])
                for name, f in _series(self.series_rows[company : company + 1, :k], 1).items()
            }
            replayed = self._replayed_pipeline(k, closes, company)
            if replayed is not None:
                found[self.pipeline_method] = replayed
            origins.append(Origin(found, float(self.series_rows[company, k])))
        weights, _ = out_of_sample_weights(origins, fallback=(self.pipeline_method,))
        return weights

    def _replayed_pipeline(
        self, k: int, closes: Sequence[MonthCloses], company: int
    ) -> float | None:
        start, end = self.months[k]
        at = datetime.combine(start, datetime.min.time(), UTC)
        won = sum(c.won for c in closes if c.month < start)
        closed = sum(c.closed for c in closes if c.month < start)
        if not closed:
            return None
        open_then = sum(
            float(d.amount or 0)
            for d in self.deals
            if (d.created_at is None or d.created_at < at)
            and (d.outcome == "open" or (d.closed_at is not None and d.closed_at >= at))
            and (d.expected_close_date is None or start <= d.expected_close_date <= end)
        )
        nyc = not_yet_created(
            self.bookings, past=self.months[:k], offset=timedelta(0), groups=len(self.scopes)
        )
        return won / closed * open_then + float(nyc.mean[company])

    def blend(
        self, planned: ScopeForecast, weights: dict[str, float], *, start_month: int
    ) -> Blended:
        g = self.scopes[planned.scope]
        won = float(
            self.bookings.booked(
                _span(planned.period), groups=len(self.scopes), until=self.as_of.date()
            )[g]
        )
        estimates = [self._pipeline(planned, g, won, start_month)]
        estimates += self._series_estimates(planned.period, g, won)
        b = blend(estimates, weights)
        figures = _figures(b.point, b.sigma, floor=won, like=planned.figures)
        return Blended(
            dataclasses.replace(planned, figures=figures),
            dict(b.weights),
            {m: money(Decimal(repr(v))) for m, v in b.points.items()},
        )

    def _pipeline(self, planned: ScopeForecast, g: int, won: float, start_month: int) -> Estimate:
        period, f = planned.period, planned.figures
        past = self._past(period, start_month)
        offset = self.as_of.date() - period.starts_on
        nyc = not_yet_created(self.bookings, past=past, offset=offset, groups=len(self.scopes))
        point = won + float(f.point) + float(nyc.mean[g])
        sigma = float(np.hypot(float(f.sigma), nyc.sigma[g]))
        return Estimate(self.pipeline_method, point, sigma)

    def _past(self, period: FiscalPeriod, start_month: int) -> list[Period]:
        """The complete periods of the same kind before this one, within the history."""
        if period.kind == "month":
            return self.months
        first = self.months[0][0] if self.months else period.starts_on
        quarters: list[Period] = []
        end = period.starts_on - timedelta(days=1)
        while end >= first:
            q = fiscal_quarter(end, start_month=start_month)
            if q.starts_on < first:
                break
            quarters.insert(0, _span(q))
            end = q.starts_on - timedelta(days=1)
        return quarters

    def _series_estimates(self, period: FiscalPeriod, g: int, won: float) -> list[Estimate]:
        """Month: the one-step forecast. Quarter: its complete months as booked, plus the
        forecasts of the rest. Never below what is already won in the period."""
        this_month = _month_start(self.as_of.date())
        ahead = _months(period.ends_on) - _months(this_month) + 1
        before = 0.0
        if period.starts_on < this_month:
            span = (period.starts_on, this_month - timedelta(days=1))
            before = float(self.bookings.booked(span, groups=len(self.scopes))[g])
        return [
            Estimate(
                name,
                max(won, before + float(f.mean[g, :ahead].sum())),
                float(f.sigma[g, :ahead].sum()),
            )
            for name, f in self.series.items()
        ]


def _months(day: date) -> int:
    return day.year * 12 + day.month


def _span(period: FiscalPeriod) -> Period:
    return period.starts_on, period.ends_on


def _series(rows: Array, horizon: int) -> dict[str, SeriesForecast]:
    return series_forecasts(rows, frequency="month", horizon=horizon)


def _bookings(won: Sequence[PastDeal], scopes: dict[Scope, int]) -> Bookings:
    created, closed, amount, group = [], [], [], []
    for deal in won:
        for scope in scopes_of(deal):
            if scope in scopes and deal.closed_at is not None:
                created.append(_day(deal.created_at))
                closed.append(_day(deal.closed_at))
                amount.append(float(deal.amount or 0))
                group.append(scopes[scope])
    return Bookings(days(created), days(closed), np.array(amount), np.array(group, dtype=np.intp))


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
