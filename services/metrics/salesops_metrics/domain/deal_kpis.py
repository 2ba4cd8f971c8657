"""KPIs over deals: win rate, cycle length, conversion, stages, pipeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from salesops_metrics.domain import reducers
from salesops_metrics.domain.dimensions import Dims, deal_dims
from salesops_metrics.domain.facts import Context, DealFact, StageEntry
from salesops_metrics.domain.kpis import (
    GroupRow,
    KpiValue,
    Measure,
    Observations,
    buckets,
    group_keys,
    sorted_rows,
)
from salesops_metrics.domain.stats import ratio

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DealFacts:
    deals: Sequence[DealFact] = ()
    lead_sources: Mapping[UUID, str | None] = field(default_factory=dict)
    stages: Sequence[StageEntry] = ()
    # Work shared by the KPIs computed from these facts in one request or scrape.
    shared: dict[Any, Any] = field(default_factory=dict, compare=False)


def closed_in_window(ctx: Context, facts: DealFacts) -> list[tuple[Dims, DealFact]]:
    found: list[tuple[Dims, DealFact]] | None = facts.shared.get(("closed", ctx.window))
    if found is None:
        found = facts.shared[("closed", ctx.window)] = [
            (deal_dims(ctx, d, facts.lead_sources), d)
            for d in facts.deals
            if d.outcome in ("won", "lost") and ctx.window.contains(d.closed)
        ]
    return found


def _won(ctx: Context, facts: DealFacts) -> Observations:
    return [(dims, d.outcome == "won") for dims, d in closed_in_window(ctx, facts)]


def _won_amounts(ctx: Context, facts: DealFacts) -> Observations:
    pairs: Observations = []
    for dims, deal in closed_in_window(ctx, facts):
        amount = ctx.rates.convert(deal.amount, deal.currency)
        if amount is not None:
            pairs.append((dims, (amount if deal.outcome == "won" else Decimal(0), amount)))
    return pairs


def _with_outcome(outcome: str) -> Callable[[Context, DealFacts], Observations]:
    def observe(ctx: Context, facts: DealFacts) -> Observations:
        return [(dims, d) for dims, d in closed_in_window(ctx, facts) if d.outcome == outcome]

    return observe


def _cycles(ctx: Context, facts: DealFacts) -> Observations:
    return [
        (dims, max((d.closed - d.created).total_seconds(), 0.0) / SECONDS_PER_DAY)
        for dims, d in closed_in_window(ctx, facts)
        if d.outcome == "won" and d.created is not None and d.closed is not None
    ]


def _created_won(ctx: Context, facts: DealFacts) -> Observations:
    return [
        (deal_dims(ctx, d, facts.lead_sources), d.outcome == "won")
        for d in facts.deals
        if ctx.window.contains(d.created)
    ]


def _open_amounts(ctx: Context, facts: DealFacts) -> Observations:
    values: Observations = []
    for deal in facts.deals:
        if deal.outcome is not None or not ctx.window.contains(deal.created):
            continue
        amount = ctx.rates.convert(deal.amount, deal.currency)
        if amount is not None:
            values.append(
                (deal_dims(ctx, deal, facts.lead_sources) | {"stage": deal.stage}, amount)
            )
    return values


win_rate = Measure[DealFacts](_won, reducers.share)
win_rate_by_value = Measure[DealFacts](_won_amounts, reducers.amount_share)
deals_won = Measure[DealFacts](_with_outcome("won"), reducers.count)
deals_lost = Measure[DealFacts](_with_outcome("lost"), reducers.count)
sales_cycle_mean = Measure[DealFacts](_cycles, reducers.average)
sales_cycle_median = Measure[DealFacts](_cycles, reducers.quantile(0.5))
sales_cycle_p90 = Measure[DealFacts](_cycles, reducers.quantile(0.9))
deal_conversion = Measure[DealFacts](_created_won, reducers.share)
pipeline_value = Measure[DealFacts](_open_amounts, reducers.amount_total, ("stage",))


def stage_path(entries: Sequence[StageEntry]) -> list[StageEntry]:
    """One deal's stage entries in order, repeats of the current stage dropped."""
    path: list[StageEntry] = []
    for entry in sorted(entries, key=lambda e: (e.entered, str(e.event_id))):
        if not path or path[-1].stage != entry.stage:
            path.append(entry)
    return path


def _moves(ctx: Context, facts: DealFacts) -> Observations:
    """Each stage entry in the window, with the stage the deal entered next (or None)."""
    deals = {d.id: d for d in facts.deals}
    by_deal: dict[UUID, list[StageEntry]] = {}
    for entry in facts.stages:
        if entry.deal_id in deals:
            by_deal.setdefault(entry.deal_id, []).append(entry)
    moves: Observations = []
    for deal_id, entries in by_deal.items():
        dims = deal_dims(ctx, deals[deal_id], facts.lead_sources)
        path = stage_path(entries)
        for index, entry in enumerate(path):
            if ctx.window.contains(entry.entered):
                after = path[index + 1].stage if index + 1 < len(path) else None
                moves.append((dims | {"from_stage": entry.stage}, after))
    return moves


class _StageConversion(Measure[DealFacts]):
    def rows(self, observations: Observations, by: str | None) -> list[GroupRow]:
        """One row per (from_stage, to_stage) and group: a bucket gives several rows."""
        keys = group_keys(by, ("from_stage",))
        rows = []
        for key, afters in buckets(observations, keys).items():
            entered = len(afters)
            group = dict(zip(keys, key, strict=True))
            for to_stage, moved in Counter(a for a in afters if a is not None).items():
                value = KpiValue(ratio(moved, entered), moved, entered, entered)
                rows.append(GroupRow({"from_stage": key[0], "to_stage": to_stage, **group}, value))
        return sorted_rows(rows)


stage_conversion = _StageConversion(_moves, reducers.count)
