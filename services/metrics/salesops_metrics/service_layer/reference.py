"""The KPIs computed in Python from the facts, row by row, as the domain defines them: load the
facts a KPI needs for a window (once per use, so that KPIs computed together share them), then
the domain's observations and reducers.

The service answers from reports.py, which works the same observations out and groups them in
PostgreSQL; this module is the executable definition the tests hold that path to (every KPI,
grouping and window of a scenario gives the same rows). It reads every row of a window into
Python, so it is far too slow to serve from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from salesops_metrics.adapters import queries
from salesops_metrics.domain import deal_kpis, lead_kpis, plan_kpis
from salesops_metrics.domain.deal_kpis import DealFacts
from salesops_metrics.domain.facts import Context, DealFact
from salesops_metrics.domain.kpis import (
    KPIS,
    GroupRow,
    KpiDefinition,
    KpiValue,
    Measure,
    Observations,
)
from salesops_metrics.domain.lead_kpis import AssignmentFacts, LeadFacts
from salesops_metrics.domain.periods import ALL_TIME, Window
from salesops_metrics.domain.stats import ratio
from salesops_metrics.service_layer.reports import KpiSettings

T = TypeVar("T")


class Facts:
    """The facts of one window, each loaded at most once, all in one transaction."""

    def __init__(
        self, conn: asyncpg.Connection, *, window: Window, now: datetime, settings: KpiSettings
    ) -> None:
        self.conn, self.window, self.now, self.settings = conn, window, now, settings
        self._loaded: dict[str, Any] = {}

    async def once(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        if key not in self._loaded:
            self._loaded[key] = await load()
        value: T = self._loaded[key]
        return value

    async def context(self) -> Context:
        async def load() -> Context:
            s = self.settings
            return Context(
                now=self.now,
                window=self.window,
                rates=await queries.rates(self.conn, s.currency),
                fiscal_start_month=s.fiscal_start_month,
                default_sla_minutes=s.default_sla_minutes,
                reps=await queries.reps(self.conn),
                accounts=await queries.accounts(self.conn),
                territories=await queries.territories(self.conn),
            )

        return await self.once("context", load)

    async def deals(self, basis: str) -> DealFacts:
        """Deals for a window basis; over all time, filtered from one load of every deal."""

        async def load() -> DealFacts:
            if basis == "stage_entered":
                stages, deals = await queries.stage_entries(self.conn, self.window)
                return DealFacts(deals, await self._lead_sources(deals), stages)
            if self.window == ALL_TIME:
                deals = [d for d in await self.every_deal() if _on_basis(d, basis)]
            elif basis == "deal_closed":
                deals = await queries.deals_closed(self.conn, self.window)
            else:
                deals = await queries.deals_created(
                    self.conn, self.window, open_only=basis == "deal_open"
                )
            return DealFacts(deals, await self._lead_sources(deals))

        return await self.once(f"deals:{basis}", load)

    async def every_deal(self) -> list[DealFact]:
        return await self.once("deals:every", lambda: queries.every_deal(self.conn))

    async def deals_with(self, outcome: str | None) -> list[DealFact]:
        return [d for d in await self.every_deal() if d.outcome == outcome]

    async def _lead_sources(self, deals: list[DealFact]) -> dict[UUID, str | None]:
        wanted = {d.lead_id for d in deals if d.lead_id}
        known: dict[UUID, str | None] = self._loaded.setdefault("lead_sources", {})
        missing = [d for d in deals if d.lead_id in wanted - known.keys()]
        known.update(await queries.lead_sources(self.conn, missing))
        return known

    async def leads(self) -> LeadFacts:
        async def load() -> LeadFacts:
            leads = await queries.leads_created(self.conn, self.window)
            ids = [lead.id for lead in leads]
            return LeadFacts(
                leads,
                await queries.assignments_of(self.conn, ids),
                await queries.outbound_touches(self.conn, ids),
            )

        return await self.once("leads", load)

    async def assignments(self) -> AssignmentFacts:
        async def load() -> AssignmentFacts:
            ids = await queries.leads_assigned_in(self.conn, self.window)
            return AssignmentFacts(
                await queries.assignments_of(self.conn, ids),
                await queries.leads_by_id(self.conn, ids),
                await queries.breaches_of(self.conn, ids),
            )

        return await self.once("assignments", load)


def _on_basis(deal: DealFact, basis: str) -> bool:
    if basis == "deal_closed":
        return deal.closed is not None
    if basis == "deal_open":
        return deal.outcome is None and deal.created is not None
    return deal.created is not None


Compute = Callable[[Facts, str | None], Awaitable[list[GroupRow]]]


FactsOf = Callable[[Facts], Awaitable[Any]]


def _measured(facts_of: FactsOf, measure: Measure[Any]) -> Compute:
    """Observations once per request or scrape (KPIs that observe the same share them),
    then one pass per grouping."""
    key = f"observed:{id(facts_of)}:{id(measure.observe)}"

    async def run(facts: Facts, by: str | None) -> list[GroupRow]:
        async def observe() -> Observations:
            return measure.observe(await facts.context(), await facts_of(facts))

        return measure.rows(await facts.once(key, observe), by)

    return run


def _deals(basis: str) -> FactsOf:
    async def load(facts: Facts) -> DealFacts:
        return await facts.deals(basis)

    return load


async def _leads(facts: Facts) -> LeadFacts:
    return await facts.leads()


async def _assignments(facts: Facts) -> AssignmentFacts:
    return await facts.assignments()


async def _adoption(facts: Facts, by: str | None) -> list[GroupRow]:
    used = await facts.once("tools", lambda: queries.tools_used(facts.conn, facts.window))
    return plan_kpis.technology_adoption(await facts.context(), used, by)


def _forecast(
    summarize: Callable[[list[plan_kpis.Outcome]], list[GroupRow]],
) -> Compute:
    async def run(facts: Facts, by: str | None) -> list[GroupRow]:
        ctx = await facts.context()
        forecasts = await facts.once("forecasts", lambda: queries.forecasts(facts.conn))
        won = await facts.deals_with("won")
        return summarize(plan_kpis.forecast_outcomes(ctx, forecasts, won, by))

    return run


async def _coverage(facts: Facts, by: str | None) -> list[GroupRow]:
    quotas = await facts.once("quotas", lambda: queries.quotas(facts.conn))
    open_deals = await facts.deals_with(None)
    return plan_kpis.pipeline_coverage(await facts.context(), quotas, open_deals, by)


async def _duplicates(facts: Facts, by: str | None) -> list[GroupRow]:
    created, duplicates = await queries.lead_events(facts.conn, facts.window)
    seen = created + duplicates
    return [GroupRow({}, KpiValue(ratio(duplicates, seen), duplicates, seen, seen))]


async def _dead_letters(facts: Facts, by: str | None) -> list[GroupRow]:
    count = await queries.dead_letters(facts.conn, facts.window)
    return [GroupRow({}, KpiValue(count, count, None, count))]


_CLOSED, _CREATED, _OPEN, _STAGES = (
    _deals(b) for b in ("deal_closed", "deal_created", "deal_open", "stage_entered")
)
MEASURES: dict[str, tuple[FactsOf, Measure[Any]]] = {
    "win_rate": (_CLOSED, deal_kpis.win_rate),
    "win_rate_by_value": (_CLOSED, deal_kpis.win_rate_by_value),
    "deals_won": (_CLOSED, deal_kpis.deals_won),
    "deals_lost": (_CLOSED, deal_kpis.deals_lost),
    "sales_cycle_mean": (_CLOSED, deal_kpis.sales_cycle_mean),
    "sales_cycle_median": (_CLOSED, deal_kpis.sales_cycle_median),
    "sales_cycle_p90": (_CLOSED, deal_kpis.sales_cycle_p90),
    "deal_conversion": (_CREATED, deal_kpis.deal_conversion),
    "stage_conversion": (_STAGES, deal_kpis.stage_conversion),
    "pipeline_value": (_OPEN, deal_kpis.pipeline_value),
    "lead_response_median": (_leads, lead_kpis.lead_response_median),
    "lead_response_p90": (_leads, lead_kpis.lead_response_p90),
    "lead_response_business_median": (_leads, lead_kpis.lead_response_business_median),
    "lead_response_business_p90": (_leads, lead_kpis.lead_response_business_p90),
    "lead_response_within_sla": (_leads, lead_kpis.within_sla),
    "speed_to_lead_median": (_leads, lead_kpis.speed_to_lead_median),
    "speed_to_lead_p90": (_leads, lead_kpis.speed_to_lead_p90),
    "lead_to_deal_conversion": (_leads, lead_kpis.lead_to_deal),
    "leads_assigned": (_assignments, lead_kpis.leads_assigned),
    "sla_breach_rate": (_assignments, lead_kpis.sla_breach_rate),
}
COMPUTE: dict[str, Compute] = {
    **{name: _measured(load, measure) for name, (load, measure) in MEASURES.items()},
    "pipeline_coverage": _coverage,
    "technology_adoption": _adoption,
    "forecast_accuracy": _forecast(plan_kpis.forecast_accuracy),
    "forecast_wape": _forecast(plan_kpis.forecast_wape),
    "forecast_bias": _forecast(plan_kpis.forecast_bias),
    "duplicate_rate": _duplicates,
    "dead_letters": _dead_letters,
}
assert set(COMPUTE) == set(KPIS), set(COMPUTE) ^ set(KPIS)


async def compute(kpi: KpiDefinition, facts: Facts, group_by: str | None) -> list[GroupRow]:
    if not kpi.supports(group_by):
        raise ValueError(f"{kpi.name} cannot be grouped by {group_by}")
    return await COMPUTE[kpi.name](facts, group_by)
