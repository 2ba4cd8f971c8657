"""SQL of first-touch SLAs: each lead's timer, and the earliest outbound touch per rep.

A timer is met by the owner's first outbound activity on the lead at or after the assignment
and no later than the due time (both ends inclusive), whichever of the two arrives first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common import writes
from salesops_common.db import first_row
from salesops_common.writes import Statement

# The touch may be known already: activities and leads travel under different keys, so an
# activity can be applied before the assignment it answers.
_START = """
    INSERT INTO sla_timers AS t (lead_id, rep_id, territory_id, attempt, max_reassignments,
                                 assigned_at, due_at, state, met_at)
    SELECT x.lead_id, x.rep_id, x.territory_id, x.attempt, x.max_reassignments,
           x.assigned_at, x.due_at,
           CASE WHEN touch.occurred_at IS NULL THEN 'pending' ELSE 'met' END,
           touch.occurred_at
    FROM unnest($1::uuid[], $2::uuid[], $3::text[],
                $4::int[], $5::int[],
                $6::timestamptz[], $7::timestamptz[])
         AS x(lead_id, rep_id, territory_id, attempt, max_reassignments, assigned_at, due_at)
    LEFT JOIN first_touches touch
        ON touch.lead_id = x.lead_id AND touch.rep_id = x.rep_id
       AND touch.occurred_at BETWEEN x.assigned_at AND x.due_at
    ON CONFLICT (lead_id) DO UPDATE
        SET rep_id = EXCLUDED.rep_id, territory_id = EXCLUDED.territory_id,
            attempt = EXCLUDED.attempt, max_reassignments = EXCLUDED.max_reassignments,
            assigned_at = EXCLUDED.assigned_at, due_at = EXCLUDED.due_at,
            state = EXCLUDED.state, met_at = EXCLUDED.met_at
"""
# Keep the earliest touch per (lead, rep) whatever the arrival order, and meet the lead's
# timer if this touch is the owner's and in time (an earlier one replaces a later met_at).
_TOUCH = text(
    """
    WITH touch AS (
        INSERT INTO first_touches (lead_id, rep_id, occurred_at)
        VALUES (:lead_id, :rep_id, :occurred_at)
        ON CONFLICT (lead_id, rep_id) DO UPDATE
            SET occurred_at = least(first_touches.occurred_at, EXCLUDED.occurred_at)
    )
    UPDATE sla_timers SET state = 'met', met_at = CAST(:occurred_at AS timestamptz)
    WHERE lead_id = CAST(:lead_id AS uuid) AND rep_id = CAST(:rep_id AS uuid)
      AND (state = 'pending' OR (state = 'met' AND met_at > CAST(:occurred_at AS timestamptz)))
      AND CAST(:occurred_at AS timestamptz) BETWEEN assigned_at AND due_at
    """
)
# One due timer, locked: several copies of the service each take a different one. The touch
# is checked again here because it may have been stored after the timer was started.
_CLAIM_DUE = text(
    """
    SELECT t.lead_id, t.rep_id, t.territory_id, t.attempt, t.max_reassignments,
           t.assigned_at, t.due_at, touch.occurred_at AS touched_at
    FROM sla_timers t
    LEFT JOIN first_touches touch
        ON touch.lead_id = t.lead_id AND touch.rep_id = t.rep_id
       AND touch.occurred_at BETWEEN t.assigned_at AND t.due_at
    WHERE t.state = 'pending' AND t.due_at <= :now
      AND NOT (t.lead_id = ANY(CAST(:skip AS uuid[])))
    ORDER BY t.due_at
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
    """
)
# The reps of the lead's last decisions, newest first: within one SLA chain, each of them was
# reassigned away for missing it.
_RECENT_HOLDERS = text(
    """
    SELECT rep_id FROM assignment_history
    WHERE lead_id = :lead_id AND rep_id IS NOT NULL
    ORDER BY id DESC LIMIT :count
    """
)


@dataclass(frozen=True)
class NewTimer:
    lead_id: UUID
    rep_id: UUID
    territory_id: str | None
    attempt: int
    max_reassignments: int
    assigned_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class Timer(NewTimer):
    touched_at: datetime | None  # a qualifying touch already stored


def start_writes(timers: Sequence[NewTimer]) -> list[Statement]:
    """Start (or restart) the leads' timers (:func:`writes.execute`)."""
    if not timers:
        return []
    return [(_START, [[getattr(t, f.name) for t in timers] for f in fields(NewTimer)])]


def cancel_writes(lead_ids: Sequence[UUID]) -> list[Statement]:
    if not lead_ids:
        return []
    return [
        (
            "UPDATE sla_timers SET state = 'cancelled' WHERE lead_id = ANY($1::uuid[]) "
            "AND state = 'pending'",
            [list(lead_ids)],
        )
    ]


async def cancel(conn: asyncpg.Connection, lead_ids: Sequence[UUID]) -> None:
    await writes.execute(conn, cancel_writes(lead_ids))


async def record_touch(
    session: AsyncSession, *, lead_id: UUID, rep_id: UUID, occurred_at: datetime
) -> None:
    await session.execute(
        _TOUCH, {"lead_id": lead_id, "rep_id": rep_id, "occurred_at": occurred_at}
    )


async def claim_due(session: AsyncSession, *, now: datetime, skip: list[UUID]) -> Timer | None:
    row = first_row(await session.execute(_CLAIM_DUE, {"now": now, "skip": skip}))
    return Timer(**row) if row else None


async def mark_met(session: AsyncSession, lead_id: UUID, *, met_at: datetime) -> None:
    await session.execute(
        text("UPDATE sla_timers SET state = 'met', met_at = :met_at WHERE lead_id = :id"),
        {"id": lead_id, "met_at": met_at},
    )


async def mark_breached(session: AsyncSession, lead_id: UUID) -> None:
    await session.execute(
        text("UPDATE sla_timers SET state = 'breached' WHERE lead_id = :id"), {"id": lead_id}
    )


async def breached(session: AsyncSession, lead_id: UUID) -> tuple[UUID, int] | None:
    """The rep and attempt of the lead's timer if it ended in a breach."""
    row = await session.execute(
        text("SELECT rep_id, attempt FROM sla_timers WHERE lead_id = :id AND state = 'breached'"),
        {"id": lead_id},
    )
    found = row.first()
    return (found.rep_id, found.attempt) if found else None


async def recent_holders(session: AsyncSession, lead_id: UUID, *, count: int) -> list[UUID]:
    rows = await session.execute(_RECENT_HOLDERS, {"lead_id": lead_id, "count": count})
    return [r.rep_id for r in rows]
