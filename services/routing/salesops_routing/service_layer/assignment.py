"""Routing leads: one decision per lead, stored with its explanation and its fact; the
lead moves on when its owner misses the SLA or leaves, and queued leads are retried."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any
from uuid import UUID

from salesops_common.envelope import utcnow
from salesops_common.events import Lead
from salesops_common.inbox import HandlerContext
from salesops_routing.adapters import repository
from salesops_routing.domain.assignment import Assignment, Decision
from salesops_routing.service_layer import notify, sla
from salesops_routing.service_layer.router import LEAD_ATTRIBUTES, LeadInput, decide, summary
from salesops_routing.service_layer.rulesets import MODELS
from salesops_routing.service_layer.state import DbState

log = logging.getLogger(__name__)

CLOSED_BY = {
    "lead.converted": "converted",
    "lead.disqualified": "disqualified",
    "lead.deleted": "deleted",
    "lead.merged": "merged",
}


def lead_attributes(lead: Lead) -> dict[str, Any]:
    values = lead.model_dump(mode="json", include=set(LEAD_ATTRIBUTES))
    return {k: v for k, v in values.items() if v is not None}


async def assign_lead(ctx: HandlerContext, *, lead: Lead) -> Assignment | None:
    """Assign a new lead and stage ``lead.assigned``.

    Returns None when nothing is assigned: the lead was merged or deleted, or it already has
    its assignment (a lead is assigned once, whatever reaches us twice).
    """
    withdrawn = await repository.withdrawal_reason(ctx.session, lead.id)
    if withdrawn is not None:
        log.info("lead %s was %s before it was created: not routed", lead.id, withdrawn)
        return None
    attributes = lead_attributes(lead)
    await repository.save_lead(ctx.session, lead.id, attributes, lead.created_at)
    if await repository.find_assignment(ctx.session, lead.id) is not None:
        return None
    model = await MODELS.current(ctx.session)
    now = utcnow()
    decision = await decide(DbState(ctx.session, lock=True), model, LeadInput(attributes), now=now)
    assignment = Assignment.of(
        decision,
        lead_id=lead.id,
        kind="assigned",
        ruleset_version=model.version,
        previous_rep_id=None,
        assigned_at=now,
        sequence=1,
    )
    if not await repository.add_assignment(ctx.session, assignment):
        return None
    await _keep(ctx, decision, assignment, sla_attempt=0)
    return assignment


async def reassign_lead(
    ctx: HandlerContext,
    *,
    lead_id: UUID,
    reason: str,
    exclude: Collection[UUID] = (),
    sla_attempt: int = 0,
    only_to_a_rep: bool = False,
) -> Assignment | None:
    """Route an open lead again, away from ``exclude``; stage ``lead.reassigned``.

    ``only_to_a_rep``: keep the lead where it is unless a rep takes it (retrying queued
    leads must not re-announce the queue). Returns None if nothing changed.
    """
    current = await repository.lock_open_assignment(ctx.session, lead_id)
    attributes = await repository.find_lead(ctx.session, lead_id)
    if current is None or attributes is None:
        return None
    model = await MODELS.current(ctx.session)
    now = utcnow()
    state = DbState(ctx.session, lock=True)
    decision = await decide(state, model, LeadInput(attributes), now=now, exclude=exclude)
    if decision.rep_id is None and only_to_a_rep:
        return None
    decision = _with_cause(decision, reason)
    assignment = Assignment.of(
        decision,
        lead_id=lead_id,
        kind="reassigned",
        ruleset_version=model.version,
        previous_rep_id=current["rep_id"],
        assigned_at=now,
        sequence=await repository.history_count(ctx.session, lead_id) + 1,
    )
    await repository.replace_assignment(ctx.session, assignment)
    await _keep(ctx, decision, assignment, sla_attempt=sla_attempt)
    return assignment


def _with_cause(decision: Decision, cause: str) -> Decision:
    from dataclasses import replace

    explanation = {**decision.explanation, "reassigned_because": cause}
    return replace(decision, reason=f"{cause}: {decision.reason}", explanation=explanation)


async def _keep(
    ctx: HandlerContext, decision: Decision, assignment: Assignment, *, sla_attempt: int
) -> None:
    if decision.rotation is not None:
        territory, rep_id, position, clock = decision.rotation
        await repository.advance_rotation(
            ctx.session, territory, rep_id=rep_id, position=position, clock=clock
        )
    await sla.start_timer(ctx.session, assignment=assignment, attempt=sla_attempt)
    await notify.enqueue_assignment(ctx.session, assignment=assignment)
    fact = assignment.fact().model_copy(update={"summary": summary(decision)})
    ctx.emit(assignment.event_type, fact, id=assignment.event_id)
    ctx.state.setdefault("assigned", []).append(assignment)


async def close_lead(
    ctx: HandlerContext, *, lead_id: UUID, status: str, merged_into_id: UUID | None = None
) -> None:
    """The lead left the funnel: it counts no more as open and its SLA stops; a merged or
    deleted lead is also never routed, whenever its lead.created arrives."""
    if status in ("merged", "deleted"):
        await repository.withdraw_lead(
            ctx.session, lead_id, reason=status, merged_into_id=merged_into_id
        )
    await repository.close_lead(ctx.session, lead_id, status=status)
    await sla.cancel_timer(ctx.session, lead_id=lead_id)


async def rep_deactivated(ctx: HandlerContext, *, rep_id: UUID) -> int:
    """A rep who leaves hands every open lead on."""
    moved = 0
    for lead_id in await repository.open_leads_of(ctx.session, rep_id):
        if await reassign_lead(ctx, lead_id=lead_id, reason="rep_deactivated", exclude={rep_id}):
            moved += 1
    return moved


async def retry_queued(
    ctx: HandlerContext, *, limit: int = 100, after: repository.QueuePlace | None = None
) -> tuple[int, repository.QueuePlace | None]:
    """Give queued leads to a rep if one can take them now (someone came back, a rule
    changed, working hours began): ``limit`` of them, from ``after`` on. Returns how many
    moved and where the next call goes on, None once the pass reached the end of the queue
    (leads no rule covers may wait there for good: the leads behind them must be reached)."""
    moved = 0
    claimed = await repository.claim_queued_leads(ctx.session, limit=limit, after=after)
    for _, lead_id in claimed:
        # Reps who already missed the lead's SLA do not get it back from the queue.
        missed = await sla.missed_by(ctx.session, lead_id=lead_id)
        if await reassign_lead(
            ctx, lead_id=lead_id, reason="from_queue", exclude=missed, only_to_a_rep=True
        ):
            moved += 1
    return moved, claimed[-1] if len(claimed) == limit else None
