"""All of metrics' SQL. Late events lose: an upsert applies only if not older than the row."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_metrics.domain.kpis import Snapshot


async def count_event(session: AsyncSession, type_name: str) -> None:
    await session.execute(
        text(
            "INSERT INTO event_counts (type, count) VALUES (:t, 1) "
            "ON CONFLICT (type) DO UPDATE SET count = event_counts.count + 1"
        ),
        {"t": type_name},
    )


async def record_outcome(
    session: AsyncSession,
    *,
    deal_id: UUID,
    outcome: str,
    amount: Decimal | None,
    currency: str | None,
    owner_id: UUID | None,
    closed_at: datetime | None,
    event_time: datetime,
) -> None:
    await session.execute(
        text(
            """
            INSERT INTO deal_outcomes (deal_id, outcome, amount, currency, owner_id, closed_at,
                                       event_time)
            VALUES (:deal_id, :outcome, :amount, :currency, :owner_id, :closed_at, :event_time)
            ON CONFLICT (deal_id) DO UPDATE SET
                outcome = excluded.outcome, amount = excluded.amount,
                currency = excluded.currency,
                owner_id = coalesce(excluded.owner_id, deal_outcomes.owner_id),
                closed_at = excluded.closed_at, event_time = excluded.event_time
            WHERE excluded.event_time >= deal_outcomes.event_time
            """
        ),
        {
            "deal_id": deal_id,
            "outcome": outcome,
            "amount": amount,
            "currency": currency,
            "owner_id": owner_id,
            "closed_at": closed_at,
            "event_time": event_time,
        },
    )


async def record_assignment(
    session: AsyncSession,
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    assigned_at: datetime,
    event_time: datetime,
) -> None:
    await session.execute(
        text(
            """
            INSERT INTO lead_assignments (lead_id, rep_id, assigned_at, event_time)
            VALUES (:lead_id, :rep_id, :assigned_at, :event_time)
            ON CONFLICT (lead_id) DO UPDATE SET
                rep_id = excluded.rep_id, assigned_at = excluded.assigned_at,
                event_time = excluded.event_time
            WHERE excluded.event_time >= lead_assignments.event_time
            """
        ),
        {
            "lead_id": lead_id,
            "rep_id": rep_id,
            "assigned_at": assigned_at,
            "event_time": event_time,
        },
    )


async def snapshot(session: AsyncSession) -> Snapshot:
    outcomes = (
        await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE outcome = 'won') AS won, "
                "count(*) FILTER (WHERE outcome = 'lost') AS lost FROM deal_outcomes"
            )
        )
    ).one()
    assigned = await session.scalar(
        text("SELECT count(*) FROM lead_assignments WHERE rep_id IS NOT NULL")
    )
    counts = await session.execute(text("SELECT type, count AS n FROM event_counts ORDER BY type"))
    return Snapshot(
        won=int(outcomes.won),
        lost=int(outcomes.lost),
        leads_assigned=int(assigned or 0),
        events_by_type={r.type: int(r.n) for r in counts},
    )
