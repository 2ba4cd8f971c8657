"""First-touch SLAs: a timer per assigned lead, met by its owner's first outbound touch in
time; a missed one publishes ``lead.sla_breached`` and moves the lead on, a bounded number of
times.

Timers live in PostgreSQL, so they survive restarts and any copy of the service may fire them
(each due timer is claimed with ``FOR UPDATE SKIP LOCKED``). A breach, its notification and
the reassignment are one transaction: a crash repeats all of it or none.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import driver_connection
from salesops_common.envelope import deterministic_event_id, utcnow
from salesops_common.events import Activity, LeadSlaBreached
from salesops_common.inbox import HandlerContext, is_transient
from salesops_common.writes import Statement
from salesops_routing.adapters import sla_timers
from salesops_routing.domain.assignment import Assignment
from salesops_routing.service_layer import notify
from salesops_routing.service_layer.context import RoutingContext
from salesops_routing.service_layer.rulesets import MODELS

log = logging.getLogger(__name__)

LEAD_SLA_BREACHED = "lead.sla_breached"
REASON = "sla_breached"


@dataclass(frozen=True)
class SlaMetrics:
    breaches: Counter


_metrics: weakref.WeakKeyDictionary[CollectorRegistry, SlaMetrics] = weakref.WeakKeyDictionary()


def sla_metrics(registry: CollectorRegistry) -> SlaMetrics:
    """The SLA counters of an app's registry, created on first use: registering a name twice
    on one registry raises, and every app (one per test) has its own registry."""
    found = _metrics.get(registry)
    if found is None:
        found = SlaMetrics(
            breaches=Counter(
                "salesops_routing_sla_breaches",
                "First-touch SLAs missed (lead.sla_breached published)",
                registry=registry,
            )
        )
        _metrics[registry] = found
    return found


def timer_writes(assignments: Sequence[tuple[Assignment, int]]) -> list[Statement]:
    """Start (or restart) each lead's timer for its new owner; with no rep or no SLA, stop
    a reassigned lead's (a new one has none). The ``int`` counts the reassignments this SLA
    has already caused. Writes for :func:`writes.execute`."""
    timers = [
        sla_timers.NewTimer(
            lead_id=a.lead_id,
            rep_id=a.rep_id,
            territory_id=a.territory_id,
            attempt=attempt,
            max_reassignments=a.sla.max_reassignments,
            assigned_at=a.assigned_at,
            due_at=a.assigned_at + timedelta(minutes=a.sla.first_touch_minutes),
        )
        for a, attempt in assignments
        if a.rep_id is not None and a.sla is not None
    ]
    stopped = [
        a.lead_id
        for a, _ in assignments
        if (a.rep_id is None or a.sla is None) and a.kind == "reassigned"
    ]
    # Different leads: the two never touch one row.
    return sla_timers.start_writes(timers) + sla_timers.cancel_writes(stopped)


async def cancel_timer(session: AsyncSession, *, lead_id: UUID) -> None:
    """The lead left the pipeline (converted, disqualified, deleted, merged)."""
    await sla_timers.cancel(await driver_connection(session), [lead_id])


async def record_touch(session: AsyncSession, *, activity: Activity) -> None:
    """Remember a rep's outbound touch of a lead; it meets the lead's timer if it is the
    owner's and in time. Inbound activities, and those without a lead, a rep or a time, are
    no first touch."""
    if activity.direction != "outbound" or activity.occurred_at is None:
        return
    if activity.lead_id is None or activity.rep_id is None:
        return
    await sla_timers.record_touch(
        session,
        lead_id=activity.lead_id,
        rep_id=activity.rep_id,
        occurred_at=activity.occurred_at,
    )


async def breach_due_timers(
    routing: RoutingContext, *, now: datetime | None = None, limit: int = 100
) -> int:
    """One pass over the due timers, one transaction each; returns how many were settled
    (breached, or met by a touch stored since)."""
    now = now or utcnow()
    skip: list[UUID] = []  # timers that failed in this pass: retried next pass, not now
    done = 0
    while done < limit:
        claimed: list[UUID] = []
        try:
            if not await _settle_next(routing, now=now, skip=skip, claimed=claimed):
                break
            done += 1
        except Exception as exc:
            if is_transient(exc) or not claimed:
                raise
            # A timer that cannot be settled must not hold back the others.
            log.exception("SLA timer of lead %s failed; retried next pass", claimed[0])
            skip.extend(claimed)
    return done


async def _settle_next(
    routing: RoutingContext, *, now: datetime, skip: list[UUID], claimed: list[UUID]
) -> bool:
    async with routing.transaction() as ctx:
        timer = await sla_timers.claim_due(ctx.session, now=now, skip=skip)
        if timer is None:
            return False
        claimed.append(timer.lead_id)
        if timer.touched_at is not None:
            await sla_timers.mark_met(ctx.session, timer.lead_id, met_at=timer.touched_at)
        else:
            await _breach(routing, ctx, timer, now=now)
    return True


async def _breach(
    routing: RoutingContext, ctx: HandlerContext, timer: sla_timers.Timer, *, now: datetime
) -> None:
    # Imported here: the assignment service imports this module to start timers.
    from salesops_routing.service_layer import assignment

    session = ctx.session
    await sla_timers.mark_breached(session, timer.lead_id)
    fact = LeadSlaBreached(
        lead_id=timer.lead_id,
        rep_id=timer.rep_id,
        territory_id=timer.territory_id,
        due_at=timer.due_at,
        breached_at=now,
    )
    ctx.emit(LEAD_SLA_BREACHED, fact, id=breach_event_id(timer))
    await notify.enqueue_breach(
        session,
        lead_id=timer.lead_id,
        rep_id=timer.rep_id,
        territory_id=timer.territory_id,
        team=await _team(session, timer.territory_id),
        due_at=timer.due_at,
        breached_at=now,
    )
    ctx.after_commit(sla_metrics(routing.metrics.registry).breaches.inc)
    log.info("lead %s: first-touch SLA missed (attempt %d)", timer.lead_id, timer.attempt)
    if timer.attempt >= timer.max_reassignments:
        return
    moved = await assignment.reassign_lead(
        ctx,
        lead_id=timer.lead_id,
        reason=REASON,
        exclude=await _chain(session, timer.lead_id, timer.rep_id, attempt=timer.attempt),
        sla_attempt=timer.attempt + 1,
    )
    if moved is not None:
        routing.count_assignment(ctx, moved.strategy)


async def _team(session: AsyncSession, territory_id: str | None) -> str | None:
    """Who hears of the breach: the territory's team in the ruleset in force now."""
    if territory_id is None:
        return None
    territory = (await MODELS.current(session)).ruleset.territory(territory_id)
    return territory.team if territory is not None else None


def breach_event_id(timer: sla_timers.Timer) -> UUID:
    """One fact per timer: the lead, the attempt, and when that timer started (a later,
    unrelated SLA of the same lead starts again at attempt 0 and is another fact)."""
    started = int(timer.assigned_at.timestamp() * 1_000_000)
    return deterministic_event_id(
        "routing", LEAD_SLA_BREACHED, f"{timer.lead_id}:{timer.attempt}:{started}"
    )


async def missed_by(session: AsyncSession, *, lead_id: UUID) -> set[UUID]:
    """The reps who missed the lead's SLA, if its last timer ended in a breach (empty
    otherwise): a lead queued because all of them did should not go back to one of them."""
    breached = await sla_timers.breached(session, lead_id)
    if breached is None:
        return set()
    rep_id, attempt = breached
    return await _chain(session, lead_id, rep_id, attempt=attempt)


async def _chain(session: AsyncSession, lead_id: UUID, rep_id: UUID, *, attempt: int) -> set[UUID]:
    """Everyone who missed one SLA chain: its last owner, and the owners of the ``attempt``
    decisions before (each was reassigned away for missing it)."""
    holders = await sla_timers.recent_holders(session, lead_id, count=attempt + 1)
    return {rep_id, *holders}


async def sla_loop(routing: RoutingContext) -> None:
    """The SLA worker: settle due timers, pause when none is left."""
    sla_metrics(routing.metrics.registry)  # the series exists from the first scrape
    limit = 100
    while True:
        try:
            settled = await breach_due_timers(routing, limit=limit)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # e.g. a deadlock with a consumer closing the same lead: the timer is still
            # pending and is tried again.
            log.warning("SLA pass interrupted: %r; trying again", exc)
            settled = 0
        if settled < limit:
            await asyncio.sleep(routing.settings.sla_poll_seconds)
