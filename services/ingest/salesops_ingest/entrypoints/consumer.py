"""Ingest's consumer of salesops.routing.v1: routing's decisions become owner write-backs."""

from __future__ import annotations

from salesops_common.db import driver_connection
from salesops_common.envelope import Envelope
from salesops_common.events import LeadAssigned
from salesops_common.inbox import Handler, HandlerContext
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.crm_sync import Assigned, plan_writebacks

_BATCH = "ingest.writebacks"


def build_handlers(ingest: IngestContext) -> dict[str, Handler]:
    """A batch's assignments are planned together, just before its transaction commits."""

    async def plan(ctx: HandlerContext, assignments: list[Assigned]) -> None:
        conn = await driver_connection(ctx.session)
        planned = await plan_writebacks(conn, assignments, apis=ingest.apis, object_types={})
        skipped = [source for source, status in planned if status == "skipped"]

        def count_skipped() -> None:
            for source in skipped:
                ingest.writebacks.labels(source, "skipped").inc()

        if skipped:
            ctx.after_commit(count_skipped)

    async def on_assignment(ctx: HandlerContext, envelope: Envelope) -> None:
        assigned = envelope.parsed_as(LeadAssigned)
        batch: list[Assigned] | None = ctx.state.get(_BATCH)
        if batch is None:
            batch = ctx.state[_BATCH] = []
            planning = batch
            ctx.before_commit(lambda: plan(ctx, planning))
        batch.append(Assigned(envelope.id, assigned.lead_id, assigned.rep_id))

    return {"lead.assigned": on_assignment, "lead.reassigned": on_assignment}
