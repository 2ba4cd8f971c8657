"""Routing new leads: one fair-rotation decision per lead, stored with its fact."""

from __future__ import annotations

import logging
from uuid import UUID

from salesops_common.envelope import utcnow
from salesops_common.inbox import HandlerContext
from salesops_routing.adapters import repository
from salesops_routing.domain.assignment import LEAD_ASSIGNED, Assignment
from salesops_routing.domain.rotation import DEFAULT_TERRITORY, next_in_rotation

log = logging.getLogger(__name__)


async def assign_lead(ctx: HandlerContext, *, lead_id: UUID) -> Assignment | None:
    """Assign a new lead to the next eligible rep and stage ``lead.assigned``.

    Returns None when nothing is assigned: the lead was merged or deleted, or it already has
    its assignment (a lead is assigned once, whatever reaches us twice).
    """
    withdrawn = await repository.withdrawal_reason(ctx.session, lead_id)
    if withdrawn is not None:
        log.info("lead %s was %s before it was created: not routed", lead_id, withdrawn)
        return None
    territory = DEFAULT_TERRITORY  # territories arrive with their own issue
    last_turn = await repository.lock_rotation(ctx.session, territory)
    reps = await repository.routable_reps(ctx.session)
    decision = next_in_rotation(reps, last_turn=last_turn, territory_id=territory)
    assignment = Assignment(lead_id=lead_id, decision=decision, assigned_at=utcnow())
    if not await repository.add_assignment(ctx.session, assignment):
        return None
    if decision.rep is not None:
        await repository.advance_rotation(ctx.session, territory, served=decision.rep.turn)
    ctx.emit(LEAD_ASSIGNED, assignment.fact(), id=assignment.event_id)
    return assignment


async def withdraw_lead(
    ctx: HandlerContext, *, lead_id: UUID, reason: str, merged_into_id: UUID | None = None
) -> None:
    """Remember a merged or deleted lead so that it is never routed."""
    await repository.withdraw_lead(
        ctx.session, lead_id, reason=reason, merged_into_id=merged_into_id
    )
