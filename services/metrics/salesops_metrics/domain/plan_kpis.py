"""KPIs against a plan or a licence: technology adoption, forecast accuracy, pipeline
coverage against quota."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from salesops_metrics.domain import reducers
from salesops_metrics.domain.dimensions import Dims, deal_territory, rep_dims
from salesops_metrics.domain.facts import Context, DealFact, ForecastFact, QuotaFact
from salesops_metrics.domain.kpis import GroupRow, KpiValue, grouped, sorted_rows
from salesops_metrics.domain.periods import BadWindow, Period, last_closed, parse_period


def technology_adoption(
    ctx: Context, used: Collection[tuple[UUID, str]], by: str | None
) -> list[GroupRow]:
    """``used``: (rep, tool) pairs with an activity through the tool in the window, tools
    lower-cased. Only selling reps count: active, and not managers (role manager), who, as
    routing has it, never work leads; a rep with no role is taken to sell."""
    return adoption_by(licensed_tools(ctx, used), by)


Licensed = list[tuple[Dims, bool]]


def licensed_tools(ctx: Context, used: Collection[tuple[UUID, str]]) -> Licensed:
    """technology_adoption's observations: each selling rep's dimensions and tool, and whether
    the rep used it; worked out once for every grouping of one read."""
    pairs = []
    for rep in ctx.reps.values():
        if not rep.active or rep.role == "manager":
            continue
        dims = rep_dims(ctx, rep.id)
        for tool in sorted({t.strip().lower() for t in rep.licensed_tools}):
            pairs.append((dims | {"tool": tool}, (rep.id, tool) in used))
    return pairs


def adoption_by(pairs: Licensed, by: str | None) -> list[GroupRow]:
    return grouped(pairs, by=by, reduce=reducers.share)


# --- scopes: forecasts and quotas -------------------------------------------------------------

SCOPE_OF_GROUP = {None: "company", "team": "team", "territory": "territory", "rep": "rep"}


@dataclass(frozen=True)
class ScopedDeal:
    deal: DealFact
    team: str | None
    rep: str | None
    territory: str | None
    amount: Decimal  # in the reporting currency

    def in_scope(self, kind: str, scope_id: str | None) -> bool:
        if kind == "company":
            return True
        return {"team": self.team, "rep": self.rep, "territory": self.territory}.get(
            kind
        ) == scope_id


def scoped(ctx: Context, deals: Sequence[DealFact]) -> list[ScopedDeal]:
    out = []
    for deal in deals:
        amount = ctx.rates.convert(deal.amount, deal.currency)
        if amount is None:
            continue
        owner = rep_dims(ctx, deal.owner_id)
        territory = deal_territory(ctx, deal)
        out.append(ScopedDeal(deal, owner["team"], owner["rep"], territory, amount))
    return out


def _period(name: str, ctx: Context) -> Period | None:
    try:
        return parse_period(name, start_month=ctx.fiscal_start_month)
    except BadWindow:
        return None


def _scope_group(period: Period, kind: str, scope_id: str | None) -> dict[str, str | None]:
    group: dict[str, str | None] = {"period": period.name}
    if kind != "company":
        group[kind] = scope_id
    return group


@dataclass(frozen=True)
class Outcome:
    """One closed period and scope: what was forecast before it began, and what was won."""

    period: Period
    scope_kind: str
    scope_id: str | None
    forecast: Decimal
    actual: Decimal


Forecasts = dict[tuple[str, str | None], tuple[Period, ForecastFact]]
Actuals = Callable[[Period, str | None], Decimal]


def latest_forecasts(ctx: Context, forecasts: Sequence[ForecastFact], kind: str) -> Forecasts:
    """For each period judged in the window (:func:`judged`) and scope of ``kind``: the
    latest forecast (by as_of, then id) published before the period began."""
    latest: Forecasts = {}
    for fc in forecasts:
        period = _period(fc.period, ctx)
        if fc.scope_kind != kind or period is None or not judged(ctx, period):
            continue
        if fc.as_of >= period.start:
            continue
        key = (period.name, fc.scope_id)
        known = latest.get(key)
        if known is None or (fc.as_of, str(fc.id)) > (known[1].as_of, str(known[1].id)):
            latest[key] = (period, fc)
    return latest


def outcomes_of(ctx: Context, kind: str, latest: Forecasts, actual: Actuals) -> list[Outcome]:
    """``actual(period, scope_id)``: the amount won in the period, in the scope."""
    outcomes = []
    for period, fc in latest.values():
        point = ctx.rates.convert(fc.point, fc.currency)
        if point is not None:
            outcomes.append(Outcome(period, kind, fc.scope_id, point, actual(period, fc.scope_id)))
    return outcomes


def forecast_outcomes(
    ctx: Context, forecasts: Sequence[ForecastFact], won: Sequence[DealFact], by: str | None
) -> list[Outcome]:
    kind = SCOPE_OF_GROUP[by]
    deals = scoped(ctx, [d for d in won if d.outcome == "won" and d.closed is not None])

    def actual(period: Period, scope_id: str | None) -> Decimal:
        return sum(
            (
                d.amount
                for d in deals
                if d.in_scope(kind, scope_id) and d.deal.closed and period.contains(d.deal.closed)
            ),
            Decimal(0),
        )

    return outcomes_of(ctx, kind, latest_forecasts(ctx, forecasts, kind), actual)


def judged(ctx: Context, period: Period) -> bool:
    """Whether the window judges ``period``: it ended by the window's end (and by now), and
    within the window or as the newest of its kind so ended. The latter keeps "the last 30
    days" from losing last month on the 31st, or "this month" from never having one."""
    window = ctx.window
    cutoff = ctx.now if window.end is None else min(ctx.now, window.end)
    if period.end > cutoff:
        return False
    if window.start is None or period.end > window.start:
        return True
    return period == last_closed(period.kind, cutoff, start_month=ctx.fiscal_start_month)


def forecast_accuracy(outcomes: Sequence[Outcome]) -> list[GroupRow]:
    rows = []
    for o in outcomes:
        error = abs(o.actual - o.forecast)
        value = float(1 - error / o.actual) if o.actual else None
        kpi = KpiValue(value, float(error), float(o.actual), 1)
        rows.append(GroupRow(_scope_group(o.period, o.scope_kind, o.scope_id), kpi))
    return sorted_rows(rows)


def _across_scopes(
    error: Callable[[Outcome], Decimal],
) -> Callable[[Sequence[Outcome]], list[GroupRow]]:
    def compute(outcomes: Sequence[Outcome]) -> list[GroupRow]:
        periods: dict[tuple[str, str], list[Outcome]] = {}
        for o in outcomes:
            periods.setdefault((o.period.name, o.scope_kind), []).append(o)
        rows = []
        for (period, kind), items in periods.items():
            numerator = sum((error(o) for o in items), Decimal(0))
            actual = sum((o.actual for o in items), Decimal(0))
            value = float(numerator / actual) if actual else None
            kpi = KpiValue(value, float(numerator), float(actual), len(items))
            rows.append(GroupRow({"period": period, "scope": kind}, kpi))
        return sorted_rows(rows)

    return compute


forecast_wape = _across_scopes(lambda o: abs(o.actual - o.forecast))
forecast_bias = _across_scopes(lambda o: o.forecast - o.actual)


Pipelines = Callable[[Period, str | None], tuple[Decimal, int]]


def quota_periods(ctx: Context, quotas: Sequence[QuotaFact], kind: str) -> list[Period]:
    """The periods of the quotas of ``kind`` that overlap the window."""
    found: dict[str, Period] = {}
    for quota in quotas:
        period = _period(quota.period, ctx)
        if quota.scope_kind == kind and period is not None and _overlaps(ctx, period):
            found[period.name] = period
    return list(found.values())


def coverage_rows(
    ctx: Context, quotas: Sequence[QuotaFact], kind: str, pipeline: Pipelines
) -> list[GroupRow]:
    """``pipeline(period, scope_id)``: the amount and count of open deals of the scope
    expected to close in the period."""
    rows = []
    for quota in quotas:
        period = _period(quota.period, ctx)
        target = ctx.rates.convert(quota.amount, quota.currency)
        if quota.scope_kind != kind or period is None or target is None:
            continue
        if not _overlaps(ctx, period):
            continue
        amount, counted = pipeline(period, quota.scope_id)
        value = float(amount / target) if target else None
        kpi = KpiValue(value, float(amount), float(target), counted)
        rows.append(GroupRow(_scope_group(period, kind, quota.scope_id), kpi))
    return sorted_rows(rows)


def pipeline_coverage(
    ctx: Context, quotas: Sequence[QuotaFact], open_deals: Sequence[DealFact], by: str | None
) -> list[GroupRow]:
    kind = SCOPE_OF_GROUP[by]
    deals = scoped(ctx, [d for d in open_deals if d.outcome is None])

    def pipeline(period: Period, scope_id: str | None) -> tuple[Decimal, int]:
        counted = [
            d.amount
            for d in deals
            if d.in_scope(kind, scope_id) and _expected_in(ctx, d.deal, period)
        ]
        return sum(counted, Decimal(0)), len(counted)

    return coverage_rows(ctx, quotas, kind, pipeline)


def _overlaps(ctx: Context, period: Period) -> bool:
    window = ctx.window
    return (window.start is None or period.end > window.start) and (
        window.end is None or period.start < window.end
    )


def _expected_in(ctx: Context, deal: DealFact, period: Period) -> bool:
    if deal.expected_close is None:
        return period.contains(ctx.now)
    return period.contains_day(deal.expected_close)
