"""The stage-weighted pipeline forecast: expected bookings per scope and period, with
intervals and the sales categories commit, best case and pipeline.

Each open deal is a Bernoulli bet: it closes for its full amount with its stage's win
probability p, or not at all. The point forecast is the sum of expectations; the spread
assumes deals win or lose independently, so the variance is Σ p(1−p)·amount².
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property
from typing import Literal, Protocol
from uuid import UUID

from salesops_common.events import ForecastPublished, ForecastScope
from salesops_forecast.domain.periods import FiscalPeriod
from salesops_forecast.domain.probabilities import StageProbabilities

ScopeKind = Literal["company", "territory", "team", "rep"]

STAGE_WEIGHTED_PIPELINE = "stage_weighted_pipeline"
# The same pipeline arithmetic with each deal's P(win) from the deal model.
WIN_MODEL_PIPELINE = "win_model_pipeline"
Z_80 = Decimal("1.2816")
Z_95 = Decimal("1.96")
COMMIT_FROM = Decimal("0.7")
BEST_CASE_FROM = Decimal("0.4")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class OpenDeal:
    """An open deal as the forecast sees it; ``team`` is its owner's team, ``territory`` its
    account's territory or else its owner's primary territory."""

    deal_id: UUID
    stage: str | None
    amount: Decimal | None
    currency: str | None
    owner_id: UUID | None
    team: str | None
    expected_close_date: date | None
    territory: str | None = None

    def closes_in(self, period: FiscalPeriod) -> bool:
        # A deal without an expected close date could close any day: it counts as current.
        return self.expected_close_date is None or period.contains(self.expected_close_date)

    def in_currency(self, currency: str) -> bool:
        # A CRM that sends no currency is taken to book in the reporting currency.
        return self.currency is None or self.currency.upper() == currency.upper()


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    id: str | None = None


COMPANY = Scope("company")


class Owned(Protocol):
    """Anything a rep owns: an open deal, a won one."""

    @property
    def owner_id(self) -> UUID | None: ...

    @property
    def team(self) -> str | None: ...

    @property
    def territory(self) -> str | None: ...


def scopes_of(deal: Owned) -> list[Scope]:
    scopes = [COMPANY]
    if deal.territory is not None:
        scopes.append(Scope("territory", deal.territory))
    if deal.team is not None:
        scopes.append(Scope("team", deal.team))
    if deal.owner_id is not None:
        scopes.append(Scope("rep", str(deal.owner_id)))
    return scopes


@dataclass(frozen=True)
class WeightedDeal:
    amount: Decimal
    win_probability: Decimal

    # One deal counts in up to four scopes: its terms are computed once.
    @cached_property
    def expected(self) -> Decimal:
        return self.win_probability * self.amount

    @cached_property
    def variance(self) -> Decimal:
        return self.win_probability * (1 - self.win_probability) * self.amount**2


@dataclass(frozen=True)
class Figures:
    point: Decimal
    lo80: Decimal
    hi80: Decimal
    lo95: Decimal
    hi95: Decimal
    commit: Decimal
    best_case: Decimal
    pipeline: Decimal
    deals: int
    # The spread behind the intervals, unrounded, for blending; not stored.
    sigma: Decimal = Decimal(0)


def money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _interval(point: Decimal, sigma: Decimal, z: Decimal) -> tuple[Decimal, Decimal]:
    # Bookings cannot be negative, however wide the spread.
    return money(max(Decimal(0), point - z * sigma)), money(point + z * sigma)


def forecast_figures(deals: Sequence[WeightedDeal]) -> Figures:
    point = sum((d.expected for d in deals), Decimal(0))
    variance = sum((d.variance for d in deals), Decimal(0))
    sigma = variance.sqrt()
    commit = sum((d.amount for d in deals if d.win_probability >= COMMIT_FROM), Decimal(0))
    upside = sum(
        (d.amount for d in deals if BEST_CASE_FROM <= d.win_probability < COMMIT_FROM),
        Decimal(0),
    )
    lo80, hi80 = _interval(point, sigma, Z_80)
    lo95, hi95 = _interval(point, sigma, Z_95)
    return Figures(
        point=money(point),
        lo80=lo80,
        hi80=hi80,
        lo95=lo95,
        hi95=hi95,
        commit=money(commit),
        best_case=money(commit + upside),
        pipeline=money(sum((d.amount for d in deals), Decimal(0))),
        deals=len(deals),
        sigma=sigma,
    )


@dataclass(frozen=True)
class ScopeForecast:
    scope: Scope
    period: FiscalPeriod
    figures: Figures
    skipped_other_currency: int


@dataclass
class _Bucket:
    weighted: list[WeightedDeal] = field(default_factory=list)
    skipped: int = 0


def _buckets(
    deals: Iterable[OpenDeal],
    period: FiscalPeriod,
    probability: Callable[[OpenDeal], Decimal],
    currency: str,
) -> dict[Scope, _Bucket]:
    buckets = {COMPANY: _Bucket()}
    for deal in deals:
        counted = deal.closes_in(period)
        other_currency = not deal.in_currency(currency)
        weighted = None
        if counted and not other_currency and deal.amount is not None:
            weighted = WeightedDeal(deal.amount, probability(deal))
        for scope in scopes_of(deal):
            # Every scope with open deals gets a forecast, zero when none close in the period.
            bucket = buckets.setdefault(scope, _Bucket())
            if counted and other_currency:
                bucket.skipped += 1
            elif weighted is not None:
                bucket.weighted.append(weighted)
    return buckets


_SCOPE_ORDER = {"company": 0, "territory": 1, "team": 2, "rep": 3}


def forecast_pipeline(
    *,
    deals: Sequence[OpenDeal],
    probabilities: StageProbabilities,
    periods: Sequence[FiscalPeriod],
    currency: str,
    deal_probabilities: Mapping[UUID, Decimal] | None = None,
) -> list[ScopeForecast]:
    """One forecast per period for the company, each territory, team and rep with open
    deals. ``deal_probabilities`` (the deal model's P(win)) replace the stage table's."""

    def probability(deal: OpenDeal) -> Decimal:
        if deal_probabilities is not None and deal.deal_id in deal_probabilities:
            return deal_probabilities[deal.deal_id]
        return probabilities.of(deal.stage)

    forecasts = []
    for period in periods:
        buckets = _buckets(deals, period, probability, currency)
        for scope in sorted(buckets, key=lambda s: (_SCOPE_ORDER[s.kind], s.id or "")):
            bucket = buckets[scope]
            figures = forecast_figures(bucket.weighted)
            forecasts.append(ScopeForecast(scope, period, figures, bucket.skipped))
    return forecasts


@dataclass(frozen=True)
class IssuedForecast:
    """A forecast as stored and published: kept for every run, never overwritten."""

    forecast_id: UUID
    run_id: UUID
    as_of: datetime
    currency: str
    scope: Scope
    period: FiscalPeriod
    figures: Figures
    skipped_other_currency: int
    methods: Mapping[str, float]
    # Each blended method's own point (in the run's answer; the event carries the weights).
    method_points: Mapping[str, Decimal] = field(default_factory=dict)

    def published(self) -> ForecastPublished:
        f = self.figures
        return ForecastPublished(
            forecast_id=self.forecast_id,
            as_of=self.as_of,
            period=self.period.name,
            scope=ForecastScope(kind=self.scope.kind, id=self.scope.id),
            currency=self.currency,
            point=f.point,
            lo80=f.lo80,
            hi80=f.hi80,
            lo95=f.lo95,
            hi95=f.hi95,
            categories={"commit": f.commit, "best_case": f.best_case, "pipeline": f.pipeline},
            methods=dict(self.methods),
        )
