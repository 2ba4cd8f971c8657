"""The KPI projections: each handler translates the wire payload, then does one job."""

from __future__ import annotations

from typing import TypeVar

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, EventData, LeadAssigned
from salesops_common.inbox import HandlerContext
from salesops_metrics.adapters import repository
from salesops_metrics.domain.deals import DealOutcome, latest_outcome

E = TypeVar("E", bound=EventData)


async def record_deal_outcome(ctx: HandlerContext, event: Envelope) -> None:
    """``deal.won`` / ``deal.lost``: the deal's outcome, unless a newer one is known.

    The row lock is enough: a deal's events share a key, hence a partition, hence one
    consumer at a time; a rebalance overlap replays the same events, which the inbox skips.
    """
    reported = _outcome_of(event)
    known = await repository.lock_deal_outcome(ctx.session, reported.deal_id)
    if latest_outcome(known, reported) is reported:
        await repository.save_deal_outcome(ctx.session, reported)


async def record_lead_assignment(ctx: HandlerContext, event: Envelope) -> None:
    """``lead.assigned`` / ``lead.reassigned``: who holds the lead, and whether a rep ever did."""
    fact = _parsed(event, LeadAssigned)
    await repository.record_lead_assignment(
        ctx.session,
        lead_id=fact.lead_id,
        rep_id=fact.rep_id,
        assigned_at=fact.assigned_at,
        event_time=event.time,
    )


def _outcome_of(event: Envelope) -> DealOutcome:
    deal = _parsed(event, Deal)
    return DealOutcome(
        deal_id=deal.id,
        outcome="won" if event.type == "deal.won" else "lost",
        amount=deal.amount,
        currency=deal.currency,
        owner_id=deal.owner_id,
        closed_at=deal.closed_at,
        event_time=event.time,
    )


def _parsed(event: Envelope, model: type[E]) -> E:
    data = event.parsed()
    if not isinstance(data, model):
        # Only a wrong registry entry gets here; failing sends the record to the DLQ.
        raise TypeError(f"{event.type} carries {type(data).__name__}, not {model.__name__}")
    return data
