"""Routing's consumer handlers: one visible registry of the CRM events it applies."""

from __future__ import annotations

from typing import TypeVar

from salesops_common.envelope import Envelope
from salesops_common.events import EventData, Lead, LeadMerged, Rep
from salesops_common.inbox import Handler, HandlerContext
from salesops_routing.service_layer import assignment, roster
from salesops_routing.service_layer.context import RoutingContext

Data = TypeVar("Data", bound=EventData)


def _data(envelope: Envelope, model: type[Data]) -> Data:
    # parsed() upgrades old schema versions; a payload of another shape is poison (DLQ).
    data = envelope.parsed()
    if not isinstance(data, model):
        raise TypeError(f"{envelope.type} carries {type(data).__name__}, not {model.__name__}")
    return data


async def on_rep_event(ctx: HandlerContext, envelope: Envelope) -> None:
    await roster.record_rep(ctx.session, rep=_data(envelope, Rep))


async def on_lead_merged(ctx: HandlerContext, envelope: Envelope) -> None:
    merged = _data(envelope, LeadMerged)
    await assignment.withdraw_lead(
        ctx, lead_id=merged.id, reason="merged", merged_into_id=merged.merged_into_id
    )


async def on_lead_deleted(ctx: HandlerContext, envelope: Envelope) -> None:
    await assignment.withdraw_lead(ctx, lead_id=_data(envelope, Lead).id, reason="deleted")


def build_handlers(routing: RoutingContext) -> dict[str, Handler]:
    """The registry; built per app because the assignment counter lives on its registry."""

    async def on_lead_created(ctx: HandlerContext, envelope: Envelope) -> None:
        assigned = await assignment.assign_lead(ctx, lead_id=_data(envelope, Lead).id)
        if assigned is not None:
            routing.count_assignment(ctx, assigned.decision.strategy)

    return {
        "rep.created": on_rep_event,
        "rep.updated": on_rep_event,
        "lead.created": on_lead_created,
        "lead.merged": on_lead_merged,
        "lead.deleted": on_lead_deleted,
    }
