"""REST for the fallback queue: the leads that wait because no rep could take them when they
were routed (no rule covered them, or every candidate was away, outside working hours or at
capacity). The queue worker retries them every ``SALESOPS_ROUTING_QUEUE_POLL_SECONDS``; this
is what an operator looks at meanwhile."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from salesops_routing.adapters import queue
from salesops_routing.service_layer.context import RoutingContext


class QueuedLead(BaseModel):
    lead_id: UUID
    territory_id: str | None
    reason: str  # why no rep took it, as the decision explained it
    queued_at: datetime


class Queue(BaseModel):
    count: int  # every lead in the queue
    leads: list[QueuedLead]  # the oldest, up to ``limit``


def build_queue_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1/routing", tags=["routing"], dependencies=[Depends(ctx.require_token)]
    )

    @router.get("/queue")
    async def get_queue(limit: Annotated[int, Query(ge=0, le=500)] = 50) -> Queue:
        """Leads waiting in the fallback queue: how many, and the oldest with the reason no
        rep took them. A queued lead leaves the queue (``lead.reassigned``) as soon as a rep
        can take it."""
        async with ctx.uow() as session:
            count, rows = await queue.queued_leads(session, limit=limit)
        return Queue(count=count, leads=[QueuedLead.model_validate(r) for r in rows])

    return router
