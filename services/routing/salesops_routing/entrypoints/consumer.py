"""Routing's consumer handlers: one visible registry of the CRM events it applies."""

from __future__ import annotations

from salesops_common.envelope import Envelope
from salesops_common.events import Lead, LeadMerged, Rep
from salesops_common.inbox import Handler, HandlerContext
from salesops_routing.service_layer import assignment, roster
from salesops_routing.service_layer.context import RoutingContext


async def on_rep_event(ctx: HandlerContext, envelope: Envelope) -> None:
    await roster.record_rep(ctx.session, rep=envelope.parsed_as(Rep), present=envelope.data.keys())


async def on_lead_merged(ctx: HandlerContext, envelope: Envelope) -> None:
    merged = envelope.parsed_as(LeadMerged)
    await assignment.withdraw_lead(
        ctx, lead_id=merged.id, reason="merged", merged_into_id=merged.merged_into_id
    )


async def on_lead_deleted(ctx: HandlerContext, envelope: Envelope) -> None:
    await assignment.withdraw_lead(ctx, lead_id=envelope.parsed_as(Lead).id, reason="deleted")


def build_handlers(routing: RoutingContext) -> dict[str, Handler]:
    """The registry; built per app because the assignment counter lives on its registry."""

    async def on_lead_created(ctx: HandlerContext, envelope: Envelope) -> None:
        assigned = await assignment.assign_lead(ctx, lead_id=envelope.parsed_as(Lead).id)
        if assigned is not None:
            routing.count_assignment(ctx, assigned.decision.strategy)

    return {
        "rep.created": on_rep_event,
        "rep.updated": on_rep_event,
        "lead.created": on_lead_created,
        "lead.merged": on_lead_merged,
        "lead.deleted": on_lead_deleted,
    }
