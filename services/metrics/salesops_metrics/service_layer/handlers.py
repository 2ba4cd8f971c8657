"""Applying events to the KPI projections: one job per handler, the inbox makes each
event count once."""

from __future__ import annotations

from salesops_common.envelope import Envelope
from salesops_common.events import EVENT_TYPES, Deal, LeadAssigned
from salesops_common.inbox import Handler, HandlerContext
from salesops_metrics.adapters import repository


async def count_event(ctx: HandlerContext, event: Envelope) -> None:
    await repository.count_event(ctx.session, event.type)


async def deal_closed(ctx: HandlerContext, event: Envelope) -> None:
    await count_event(ctx, event)
    deal = event.parsed()
    assert isinstance(deal, Deal)
    await repository.record_outcome(
        ctx.session,
        deal_id=deal.id,
        outcome="won" if event.type == "deal.won" else "lost",
        amount=deal.amount,
        currency=deal.currency,
        owner_id=deal.owner_id,
        closed_at=deal.closed_at,
        event_time=event.time,
    )


async def lead_assigned(ctx: HandlerContext, event: Envelope) -> None:
    await count_event(ctx, event)
    fact = event.parsed()
    assert isinstance(fact, LeadAssigned)
    await repository.record_assignment(
        ctx.session,
        lead_id=fact.lead_id,
        rep_id=fact.rep_id,
        assigned_at=fact.assigned_at,
        event_time=event.time,
    )


def handlers() -> dict[str, Handler]:
    """Every event type is counted; some also feed a KPI."""
    registry: dict[str, Handler] = dict.fromkeys(EVENT_TYPES, count_event)
    registry["deal.won"] = deal_closed
    registry["deal.lost"] = deal_closed
    registry["lead.assigned"] = lead_assigned
    registry["lead.reassigned"] = lead_assigned
    return registry
