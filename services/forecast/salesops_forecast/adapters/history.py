"""The SQL of the time-series forecast and the blend: deals' history as far back as the
series go, and how many deals closed each month."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_forecast.domain.pipeline_model import MonthCloses, PastDeal


async def deals_since(session: AsyncSession, *, since: datetime) -> list[PastDeal]:
    rows = await session.execute(
        text(
            "SELECT d.created_at, d.closed_at, d.outcome, d.amount, d.currency, d.owner_id, "
            "r.team, d.expected_close_date, a.territory_id AS territory FROM deals d "
            "LEFT JOIN reps r ON r.rep_id = d.owner_id "
            "LEFT JOIN accounts a ON a.account_id = d.account_id AND NOT a.deleted "
            "WHERE NOT d.deleted AND (d.outcome = 'open' OR d.closed_at >= :since)"
        ),
        {"since": since},
    )
    return [PastDeal(**r._asdict()) for r in rows]


async def closes_by_month(session: AsyncSession) -> list[MonthCloses]:
    """Won and closed deals per month of closing (UTC), oldest first: the win rate known at
    any month's start is the sum of the months before it."""
    rows = await session.execute(
        text(
            "SELECT CAST(date_trunc('month', closed_at AT TIME ZONE 'UTC') AS date) AS month, "
            "count(*) FILTER (WHERE outcome = 'won') AS won, count(*) AS closed FROM deals "
            "WHERE outcome IN ('won', 'lost') AND NOT deleted AND closed_at IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        )
    )
    return [MonthCloses(r.month, int(r.won), int(r.closed)) for r in rows]
