"""Routing leads: one decision per lead, stored with its explanation and its fact; the
lead moves on when its owner misses the SLA or leaves, and queued leads are retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from salesops_common import writes
from salesops_common.db import driver_connection
from salesops_common.envelope import utcnow
from salesops_common.events import Lead
from salesops_common.inbox import HandlerContext
from salesops_routing.adapters import decisions, repository
from salesops_routing.domain.assignment import Assignment, Decision
from salesops_routing.service_layer import notify, sla
from salesops_routing.service_layer.router import LEAD_ATTRIBUTES, LeadInput, decide, summary
from salesops_routing.service_layer.rulesets import MODELS
from salesops_routing.service_layer.state import MemoryState, load_state

log = logging.getLogger(__name__)
# Leads decided between two turns given to the event loop's other tasks (a decision takes
# about half a millisecond of CPU: a turn at least every ~8 ms).
YIELD_EVERY = 16

CLOSED_BY = {
    "lead.converted": "converted",
    "lead.disqualified": "disqualified",
    "lead.deleted": "deleted",
    "lead.merged": "merged",
}


def lead_attributes(lead: Lead) -> dict[str, Any]:
    values = lead.model_dump(mode="json", include=set(LEAD_ATTRIBUTES))
    return {k: v for k, v in values.items() if v is not None}


class ConcurrentAssignment(RuntimeError):
    """Another copy of the service assigned one of the batch's leads meanwhile (a rebalance
    overlap): the batch is applied again one event at a time, and those leads are skipped."""


@dataclass(frozen=True)
class Kept:
    decision: Decision
    assignment: Assignment
    sla_attempt: int  # reassignments this lead's SLA has already caused


async def assign_leads(ctx: HandlerContext, leads: Sequence[Lead]) -> list[Assignment]:
    """Assign new leads, in order, and stage ``lead.assigned`` for each.

    A batch's leads are decided one after the other on state read once for them all
    (:func:`load_state`). Leads merged or deleted before they were created are never
    routed, and a lead is assigned once, whatever reaches us twice.
    """
    attributes: dict[UUID, dict[str, Any]] = {}
    created_at: dict[UUID, datetime | None] = {}
    for lead in leads:
        attributes[lead.id] = {**attributes.get(lead.id, {}), **lead_attributes(lead)}
        created_at[lead.id] = created_at.get(lead.id) or lead.created_at
    conn = await driver_connection(ctx.session)
    withdrawn = await decisions.save_routable_leads(
        conn, [(lead_id, attributes[lead_id], created_at[lead_id]) for lead_id in attributes]
    )
    for lead_id, reason in withdrawn.items():
        log.info("lead %s was %s before it was created: not routed", lead_id, reason)
    fresh = [lead_id for lead_id in attributes if lead_id not in withdrawn]
    if not fresh:
        return []
    model = await MODELS.current(ctx.session)
    now = utcnow()
    inputs = {lead_id: LeadInput(attributes[lead_id]) for lead_id in fresh}
    state = await load_state(ctx.session, model, list(inputs.values()), now=now, lock=True)
    # Read after the rotations are locked: a copy that assigned these leads has committed.
    done = await decisions.assigned_leads(conn, fresh)
    kept: list[Kept] = []
    for n, lead_id in enumerate(fresh, start=1):
        if lead_id in done:
            continue
        if n % YIELD_EVERY == 0:
            # Decisions are Python, and most of them await nothing: give the requests that
            # arrived meanwhile (GET /v1/reps, a ruleset PUT) their turn on the event loop
            # instead of keeping them until the whole batch is decided.
            await asyncio.sleep(0)
        decision = await decide(state, model, inputs[lead_id], now=now)
        state.kept(decision, at=now)
        assignment = Assignment.of(
            decision,
            lead_id=lead_id,
            kind="assigned",
            ruleset_version=model.version,
            previous_rep_id=None,
            assigned_at=now,
            sequence=1,
        )
        kept.append(Kept(decision, assignment, 0))
    added = await decisions.add_assignments(conn, [k.assignment for k in kept])
    if len(added) != len(kept):
        raise ConcurrentAssignment(f"{len(kept) - len(added)} leads were assigned meanwhile")
    await _keep(ctx, state, kept)
    return [k.assignment for k in kept]


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
    lead = LeadInput(attributes)
    state = await load_state(ctx.session, model, [lead], now=now, lock=True)
    decision = await decide(state, model, lead, now=now, exclude=exclude)
    if decision.rep_id is None and only_to_a_rep:
        return None
    decision = _with_cause(decision, reason)
    state.kept(decision, at=now)
    assignment = Assignment.of(
        decision,
        lead_id=lead_id,
        kind="reassigned",
        ruleset_version=model.version,
        previous_rep_id=current["rep_id"],
        assigned_at=now,
        sequence=await repository.history_count(ctx.session, lead_id) + 1,
    )
    await decisions.replace_assignments(await driver_connection(ctx.session), [assignment])
    await _keep(ctx, state, [Kept(decision, assignment, sla_attempt)])
    return assignment


def _with_cause(decision: Decision, cause: str) -> Decision:
    explanation = {**decision.explanation, "reassigned_because": cause}
    return replace(decision, reason=f"{cause}: {decision.reason}", explanation=explanation)


async def _keep(ctx: HandlerContext, state: MemoryState, kept: Sequence[Kept]) -> None:
    """What follows from stored decisions: the rotations move, SLA timers start, the teams'
    channels are told, and the facts are staged for the outbox."""
    conn = await driver_connection(ctx.session)
    changes = state.rotation_changes()
    await writes.execute(
        conn,
        decisions.rotation_writes(changes.clocks, changes.positions)
        + sla.timer_writes([(k.assignment, k.sla_attempt) for k in kept])
        + notify.assignment_writes([k.assignment for k in kept]),
    )
    for k in kept:
        fact = k.assignment.fact().model_copy(update={"summary": summary(k.decision)})
        ctx.emit(k.assignment.event_type, fact, id=k.assignment.event_id)


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
