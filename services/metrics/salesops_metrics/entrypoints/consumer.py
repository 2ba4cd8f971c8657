"""The handlers registry of metrics' one consumer (all topics): every event type is counted
by type, and the types that feed a KPI are also projected."""

from __future__ import annotations

from salesops_common.envelope import Envelope
from salesops_common.events import EVENT_TYPES
from salesops_common.inbox import Handler, HandlerContext
from salesops_metrics.service_layer.event_tally import count_event
from salesops_metrics.service_layer.projections import (
    record_deal_outcome,
    record_lead_assignment,
)

PROJECTIONS: dict[str, Handler] = {
    "deal.won": record_deal_outcome,
    "deal.lost": record_deal_outcome,
    "lead.assigned": record_lead_assignment,
    "lead.reassigned": record_lead_assignment,
}


def handlers() -> dict[str, Handler]:
    """A handler for every known type; a type not listed here would be skipped uncounted."""
    return {name: _counted(PROJECTIONS.get(name)) for name in EVENT_TYPES}


def _counted(project: Handler | None) -> Handler:
    async def handle(ctx: HandlerContext, event: Envelope) -> None:
        await count_event(ctx, event)
        if project is not None:
            await project(ctx, event)

    return handle
