"""Computing KPIs: load the facts a KPI needs for a window (once per request or scrape, so
that KPIs computed together share them), then the pure math of the domain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from salesops_metrics.adapters import queries
from salesops_metrics.domain import deal_kpis, lead_kpis, plan_kpis, reducers
from salesops_metrics.domain.deal_kpis import DealFacts
from salesops_metrics.domain.facts import Context, DealFact
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition, KpiValue
from salesops_metrics.domain.lead_kpis import AssignmentFacts, LeadFacts
from salesops_metrics.domain.periods import Window
from salesops_metrics.domain.stats import ratio

T = TypeVar("T")


@dataclass(frozen=True)
class KpiSettings:
    currency: str = "USD"
    fiscal_start_month: int = 1
    default_sla_minutes: float = 60.0


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
        async def load() -> DealFacts:
            if basis == "deal_closed":
                deals = await queries.deals_closed(self.conn, self.window)
            elif basis == "stage_entered":
                stages, deals = await queries.stage_entries(self.conn, self.window)
                sources = await queries.lead_sources(self.conn, deals)
                return DealFacts(deals, sources, stages)
            else:
                deals = await queries.deals_created(
                    self.conn, self.window, open_only=basis == "deal_open"
                )
            return DealFacts(deals, await queries.lead_sources(self.conn, deals))

        return await self.once(f"deals:{basis}", load)

    async def deals_with(self, outcome: str | None) -> list[DealFact]:
        async def load() -> list[DealFact]:
            return await queries.deals_by_outcome(self.conn, outcome)

        return await self.once(f"outcome:{outcome}", load)

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


Compute = Callable[[Facts, str | None], Awaitable[list[GroupRow]]]


def _on_deals(
    basis: str, compute: Callable[[Context, DealFacts, str | None], list[GroupRow]]
) -> Compute:
    async def run(facts: Facts, by: str | None) -> list[GroupRow]:
        return compute(await facts.context(), await facts.deals(basis), by)

    return run


def _on_leads(compute: Callable[[Context, LeadFacts, str | None], list[GroupRow]]) -> Compute:
    async def run(facts: Facts, by: str | None) -> list[GroupRow]:
        return compute(await facts.context(), await facts.leads(), by)

    return run


def _on_assignments(
    compute: Callable[[Context, AssignmentFacts, str | None], list[GroupRow]],
) -> Compute:
    async def run(facts: Facts, by: str | None) -> list[GroupRow]:
        return compute(await facts.context(), await facts.assignments(), by)

    return run


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


COMPUTE: dict[str, Compute] = {
    "win_rate": _on_deals("deal_closed", deal_kpis.win_rate),
    "win_rate_by_value": _on_deals("deal_closed", deal_kpis.win_rate_by_value),
    "deals_won": _on_deals("deal_closed", deal_kpis.outcome_count("won")),
    "deals_lost": _on_deals("deal_closed", deal_kpis.outcome_count("lost")),
    "sales_cycle_mean": _on_deals("deal_closed", deal_kpis.sales_cycle(reducers.average)),
    "sales_cycle_median": _on_deals("deal_closed", deal_kpis.sales_cycle(reducers.quantile(0.5))),
    "sales_cycle_p90": _on_deals("deal_closed", deal_kpis.sales_cycle(reducers.quantile(0.9))),
    "deal_conversion": _on_deals("deal_created", deal_kpis.deal_conversion),
    "stage_conversion": _on_deals("stage_entered", deal_kpis.stage_conversion),
    "pipeline_value": _on_deals("deal_open", deal_kpis.pipeline_value),
    "pipeline_coverage": _coverage,
    "lead_response_median": _on_leads(
        lead_kpis.lead_time(lead_kpis.calendar, reducers.quantile(0.5))
    ),
    "lead_response_p90": _on_leads(lead_kpis.lead_time(lead_kpis.calendar, reducers.quantile(0.9))),
    "lead_response_business_median": _on_leads(
        lead_kpis.lead_time(lead_kpis.business_response_minutes, reducers.quantile(0.5))
    ),
    "lead_response_business_p90": _on_leads(
        lead_kpis.lead_time(lead_kpis.business_response_minutes, reducers.quantile(0.9))
    ),
    "lead_response_within_sla": _on_leads(lead_kpis.within_sla),
    "speed_to_lead_median": _on_leads(lead_kpis.lead_time(lead_kpis.speed, reducers.quantile(0.5))),
    "speed_to_lead_p90": _on_leads(lead_kpis.lead_time(lead_kpis.speed, reducers.quantile(0.9))),
    "lead_to_deal_conversion": _on_leads(lead_kpis.lead_to_deal),
    "leads_assigned": _on_assignments(lead_kpis.leads_assigned),
    "sla_breach_rate": _on_assignments(lead_kpis.sla_breach_rate),
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
