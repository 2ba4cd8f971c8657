"""KPIs over deals: win rate, cycle length, conversion, stages, pipeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from salesops_metrics.domain import reducers
from salesops_metrics.domain.dimensions import Dims, deal_dims
from salesops_metrics.domain.facts import Context, DealFact, StageEntry
from salesops_metrics.domain.kpis import (
    GroupRow,
    KpiValue,
    buckets,
    group_keys,
    grouped,
    sorted_rows,
)
from salesops_metrics.domain.stats import ratio

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DealFacts:
    deals: Sequence[DealFact] = ()
    lead_sources: Mapping[UUID, str | None] = field(default_factory=dict)
    stages: Sequence[StageEntry] = ()


def closed_in_window(ctx: Context, facts: DealFacts) -> list[tuple[Dims, DealFact]]:
    return [
        (deal_dims(ctx, d, facts.lead_sources), d)
        for d in facts.deals
        if d.outcome in ("won", "lost") and ctx.window.contains(d.closed)
    ]


def win_rate(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
    return grouped(
        ((dims, d.outcome == "won") for dims, d in closed_in_window(ctx, facts)),
        by=by,
        reduce=reducers.share,
    )


def win_rate_by_value(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
    pairs = []
    for dims, deal in closed_in_window(ctx, facts):
        amount = ctx.rates.convert(deal.amount, deal.currency)
        if amount is not None:
            pairs.append((dims, (amount if deal.outcome == "won" else Decimal(0), amount)))
    return grouped(pairs, by=by, reduce=reducers.amount_share)


def outcome_count(outcome: str) -> Callable[[Context, DealFacts, str | None], list[GroupRow]]:
    def compute(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
        closed = closed_in_window(ctx, facts)
        return grouped(
            ((dims, d) for dims, d in closed if d.outcome == outcome),
            by=by,
            reduce=reducers.count,
        )

    return compute


def sales_cycle(
    reduce: Callable[[list[float]], KpiValue],
) -> Callable[[Context, DealFacts, str | None], list[GroupRow]]:
    def compute(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
        cycles = [
            (dims, max((d.closed - d.created).total_seconds(), 0.0) / SECONDS_PER_DAY)
            for dims, d in closed_in_window(ctx, facts)
            if d.outcome == "won" and d.created is not None and d.closed is not None
        ]
        return grouped(cycles, by=by, reduce=reduce)

    return compute


def deal_conversion(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
    return grouped(
        (
            (deal_dims(ctx, d, facts.lead_sources), d.outcome == "won")
            for d in facts.deals
            if ctx.window.contains(d.created)
        ),
        by=by,
        reduce=reducers.share,
    )


def pipeline_value(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
    values = []
    for deal in facts.deals:
        if deal.outcome is not None or not ctx.window.contains(deal.created):
            continue
        amount = ctx.rates.convert(deal.amount, deal.currency)
        if amount is not None:
            dims = deal_dims(ctx, deal, facts.lead_sources) | {"stage": deal.stage}
            values.append((dims, amount))
    return grouped(values, by=by, reduce=reducers.amount_total, inherent=("stage",))


def stage_path(entries: Sequence[StageEntry]) -> list[StageEntry]:
    """One deal's stage entries in order, repeats of the current stage dropped."""
    path: list[StageEntry] = []
    for entry in sorted(entries, key=lambda e: (e.entered, str(e.event_id))):
        if not path or path[-1].stage != entry.stage:
            path.append(entry)
    return path


def stage_conversion(ctx: Context, facts: DealFacts, by: str | None) -> list[GroupRow]:
    deals = {d.id: d for d in facts.deals}
    by_deal: dict[UUID, list[StageEntry]] = {}
    for entry in facts.stages:
        if entry.deal_id in deals:
            by_deal.setdefault(entry.deal_id, []).append(entry)
    moves: list[tuple[Dims, str | None]] = []
    for deal_id, entries in by_deal.items():
        dims = deal_dims(ctx, deals[deal_id], facts.lead_sources)
        path = stage_path(entries)
        for index, entry in enumerate(path):
            if ctx.window.contains(entry.entered):
                after = path[index + 1].stage if index + 1 < len(path) else None
                moves.append((dims | {"from_stage": entry.stage}, after))
    keys = group_keys(by, ("from_stage",))
    rows = []
    for key, afters in buckets(moves, keys).items():
        entered = len(afters)
        group = dict(zip(keys, key, strict=True))
        for to_stage, moved in Counter(a for a in afters if a is not None).items():
            value = KpiValue(ratio(moved, entered), moved, entered, entered)
            rows.append(GroupRow({"from_stage": key[0], "to_stage": to_stage, **group}, value))
    return sorted_rows(rows)
