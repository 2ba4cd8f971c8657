"""Ingest's consumer of salesops.routing.v1: routing's decisions become owner write-backs."""

from __future__ import annotations

from salesops_common.db import driver_connection
from salesops_common.envelope import Envelope
from salesops_common.events import LeadAssigned
from salesops_common.inbox import Handler, HandlerContext
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.crm_sync import plan_writeback


def build_handlers(ingest: IngestContext) -> dict[str, Handler]:
    async def on_assignment(ctx: HandlerContext, envelope: Envelope) -> None:
        assigned = envelope.parsed_as(LeadAssigned)
        conn = await driver_connection(ctx.session)
        planned = await plan_writeback(
            conn,
            event_id=envelope.id,
            lead_id=assigned.lead_id,
            rep_id=assigned.rep_id,
            apis=ingest.apis,
            object_types={},
        )
        skipped = [source for source, status in planned if status == "skipped"]

        def count_skipped() -> None:
            for source in skipped:
                ingest.writebacks.labels(source, "skipped").inc()

        if skipped:
            ctx.after_commit(count_skipped)

    return {"lead.assigned": on_assignment, "lead.reassigned": on_assignment}
