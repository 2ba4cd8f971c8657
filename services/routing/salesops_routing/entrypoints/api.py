"""Routing's REST API: a lead's assignment with its explanation, and the rep roster."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from salesops_common.http import ApiError
from salesops_routing.adapters import repository
from salesops_routing.service_layer.context import RoutingContext


class AssignmentView(BaseModel):
    lead_id: UUID
    rep_id: UUID | None  # null: the lead waits in the fallback queue
    territory_id: str
    strategy: str
    ruleset_version: int
    reason: str
    assigned_at: datetime
    explanation: dict[str, Any]


class RepView(BaseModel):
    id: UUID
    name: str | None
    email: str | None
    active: bool
    role: str | None
    team: str | None
    time_zone: str | None
    manager_id: UUID | None
    rotation_turn: int
    assigned_leads: int


class Roster(BaseModel):
    reps: list[RepView]


def build_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["routing"], dependencies=[Depends(ctx.require_token)])

    @router.get("/assignments/{lead_id}")
    async def get_assignment(lead_id: UUID) -> AssignmentView:
        """Who a lead was assigned to, by which strategy, and why (404 until it is)."""
        async with ctx.uow() as session:
            found = await repository.find_assignment(session, lead_id)
            withdrawn = None if found else await repository.withdrawal_reason(session, lead_id)
        if found is None:
            raise _not_assigned(withdrawn)
        return AssignmentView.model_validate(found)

    @router.get("/reps")
    async def list_reps() -> Roster:
        """Every rep with their routing attributes and how many leads they were assigned,
        in rotation order."""
        async with ctx.uow() as session:
            rows = await repository.reps_with_assignment_counts(session)
        return Roster(
            reps=[RepView.model_validate({**r, "rotation_turn": r["turn"]}) for r in rows]
        )

    return router


def _not_assigned(withdrawn: str | None) -> ApiError:
    if withdrawn is None:
        return ApiError(404, "the lead has no assignment (yet)")
    return ApiError(
        404, f"the lead was {withdrawn}: it is never routed", details={"withdrawn": withdrawn}
    )
