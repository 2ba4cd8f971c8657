"""All of metrics' SQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_metrics.domain.deals import DealOutcome
from salesops_metrics.domain.kpis import Snapshot

# Sorted input, so every transaction locks the shared per-type rows in the same order.
_ADD_EVENT_COUNTS = text(
    """
    INSERT INTO event_counts (type, count)
    SELECT type, count FROM unnest(CAST(:types AS text[]), CAST(:counts AS bigint[]))
        AS added (type, count)
    ORDER BY type
    ON CONFLICT (type) DO UPDATE SET count = event_counts.count + excluded.count
    """
)


async def add_event_counts(session: AsyncSession, counts: Mapping[str, int]) -> None:
    """One statement per batch, rows in type order (see event_tally)."""
    types = sorted(counts)
    await session.execute(_ADD_EVENT_COUNTS, {"types": types, "counts": [counts[t] for t in types]})


async def lock_deal_outcome(session: AsyncSession, deal_id: UUID) -> DealOutcome | None:
    row = (
        await session.execute(
            text(
                "SELECT deal_id, outcome, amount, currency, owner_id, closed_at, event_time "
                "FROM deal_outcomes WHERE deal_id = :deal_id FOR UPDATE"
            ),
            {"deal_id": deal_id},
        )
    ).one_or_none()
    return DealOutcome(**row._asdict()) if row else None


async def save_deal_outcome(session: AsyncSession, outcome: DealOutcome) -> None:
    await session.execute(
        text(
            """
            INSERT INTO deal_outcomes (deal_id, outcome, amount, currency, owner_id, closed_at,
                                       event_time)
            VALUES (:deal_id, :outcome, :amount, :currency, :owner_id, :closed_at, :event_time)
            ON CONFLICT (deal_id) DO UPDATE SET
                outcome = excluded.outcome, amount = excluded.amount,
                currency = excluded.currency, owner_id = excluded.owner_id,
                closed_at = excluded.closed_at, event_time = excluded.event_time
            """
        ),
        {
            "deal_id": outcome.deal_id,
            "outcome": outcome.outcome,
            "amount": outcome.amount,
            "currency": outcome.currency,
            "owner_id": outcome.owner_id,
            "closed_at": outcome.closed_at,
            "event_time": outcome.event_time,
        },
    )


# The newest assignment (by event time) names the current rep; whether the lead ever
# reached a rep is an OR, so it neither depends on arrival order nor ever turns false.
_RECORD_ASSIGNMENT = text(
    """
    INSERT INTO lead_assignments AS known (lead_id, rep_id, assigned_at, event_time, reached_rep)
    VALUES (:lead_id, :rep_id, :assigned_at, :event_time, :reached_rep)
    ON CONFLICT (lead_id) DO UPDATE SET
        rep_id = CASE WHEN excluded.event_time >= known.event_time
                      THEN excluded.rep_id ELSE known.rep_id END,
        assigned_at = CASE WHEN excluded.event_time >= known.event_time
                           THEN excluded.assigned_at ELSE known.assigned_at END,
        event_time = greatest(known.event_time, excluded.event_time),
        reached_rep = known.reached_rep OR excluded.reached_rep
    """
)


async def record_lead_assignment(
    session: AsyncSession,
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    assigned_at: datetime,
    event_time: datetime,
) -> None:
    await session.execute(
        _RECORD_ASSIGNMENT,
        {
            "lead_id": lead_id,
            "rep_id": rep_id,
            "assigned_at": assigned_at,
            "event_time": event_time,
            "reached_rep": rep_id is not None,
        },
    )


# One statement, so every number comes from the same database snapshot.
_SNAPSHOT = text(
    """
    SELECT
        (SELECT count(*) FROM deal_outcomes WHERE outcome = 'won') AS deals_won,
        (SELECT count(*) FROM deal_outcomes WHERE outcome = 'lost') AS deals_lost,
        (SELECT count(*) FROM lead_assignments WHERE reached_rep) AS leads_assigned,
        (SELECT coalesce(jsonb_object_agg(type, count), '{}') FROM event_counts)
            AS events_by_type
    """
).columns(
    deals_won=BigInteger, deals_lost=BigInteger, leads_assigned=BigInteger, events_by_type=JSONB
)


async def snapshot(session: AsyncSession) -> Snapshot:
    row = (await session.execute(_SNAPSHOT)).one()
    return Snapshot(
        deals_won=int(row.deals_won),
        deals_lost=int(row.deals_lost),
        leads_assigned=int(row.leads_assigned),
        events_by_type={t: int(n) for t, n in sorted(row.events_by_type.items())},
    )
