"""Routing's SQL for reps, leads and assignments outside the decision path (that is
:mod:`salesops_routing.adapters.decisions`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import first_row
from salesops_routing.domain.roster import ROUTING_ATTRIBUTES

_REP_COLUMNS = (
    "id, turn, name, email, active, role, team, time_zone, manager_id, working_hours, "
    "capacity_per_day, capacity_per_week, out_of_office"
)
# Counts kept as assignments change (rep_lead_counts), not counted over the whole history.
_REPS_WITH_COUNTS = f"""
    SELECT {_REP_COLUMNS}, coalesce(c.assigned_leads, 0) AS assigned_leads,
           coalesce(c.open_leads, 0) AS open_leads
    FROM reps r LEFT JOIN rep_lead_counts c ON c.rep_id = r.id
"""
_ROSTER_WITH_COUNTS = text(_REPS_WITH_COUNTS + " ORDER BY r.turn")
_REP_WITH_COUNTS = text(_REPS_WITH_COUNTS + " WHERE r.id = :id")
# --- reps -------------------------------------------------------------------------------


async def save_rep(session: AsyncSession, rep_id: UUID, attributes: Mapping[str, Any]) -> None:
    """Insert a rep or merge the stated attributes into what is known; others stay as they are."""
    columns = [c for c in ROUTING_ATTRIBUTES if c in attributes]  # a fixed allowlist
    names = ", ".join(["id", *columns])
    values = ", ".join(
        f"CAST(:{c} AS jsonb)" if c in _JSON_COLUMNS else f":{c}" for c in ["id", *columns]
    )
    merged = ", ".join([*(f"{c} = EXCLUDED.{c}" for c in columns), "updated_at = now()"])
    params = {"id": rep_id, **{c: _db_value(c, attributes[c]) for c in columns}}
    await session.execute(
        text(
            f"INSERT INTO reps ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {merged}"
        ),
        params,
    )


_JSON_COLUMNS = frozenset({"working_hours", "out_of_office"})


def _db_value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return None if value is None else orjson.dumps(value).decode()
    return value


async def rep_is_active(session: AsyncSession, rep_id: UUID) -> bool | None:
    row = await session.execute(text("SELECT active FROM reps WHERE id = :id"), {"id": rep_id})
    active: bool | None = row.scalar()
    return active


async def reps_with_assignment_counts(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(_ROSTER_WITH_COUNTS)
    return [dict(r._mapping) for r in rows]


async def find_rep(session: AsyncSession, rep_id: UUID) -> dict[str, Any] | None:
    row = await session.execute(_REP_WITH_COUNTS, {"id": rep_id})
    return first_row(row)


async def roster(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(text("SELECT id, email, active, role FROM reps ORDER BY turn"))
    return [dict(r._mapping) for r in rows]


# --- leads and assignments --------------------------------------------------------------


async def find_lead(session: AsyncSession, lead_id: UUID) -> dict[str, Any] | None:
    row = await session.execute(
        text("SELECT attributes FROM leads WHERE id = :id"), {"id": lead_id}
    )
    attributes: dict[str, Any] | None = row.scalar()
    return attributes


async def leads_received(
    session: AsyncSession, *, since: datetime, until: datetime, limit: int
) -> list[dict[str, Any]]:
    """The leads received in the window, in the order they were first routed: a consumer
    applies a batch of leads in one transaction, so they share one ``received_at``, and only
    the order of the decisions (their history ids) lets a replay hand them out as it was done."""
    rows = await session.execute(
        text(
            """
            SELECT l.id, l.attributes, l.received_at, a.rep_id, a.territory_id, a.strategy
            FROM leads l
            LEFT JOIN assignments a ON a.lead_id = l.id
            LEFT JOIN LATERAL (SELECT min(h.id) AS id FROM assignment_history h
                               WHERE h.lead_id = l.id) first ON true
            WHERE l.received_at >= :since AND l.received_at < :until
            ORDER BY first.id NULLS LAST, l.received_at, l.id LIMIT :limit
            """
        ),
        {"since": since, "until": until, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


async def lock_open_assignment(session: AsyncSession, lead_id: UUID) -> dict[str, Any] | None:
    """The lead's current assignment while it is open, locked for a reassignment."""
    row = await session.execute(
        text(
            "SELECT lead_id, rep_id, reassignments FROM assignments "
            "WHERE lead_id = :id AND status = 'open' FOR UPDATE"
        ),
        {"id": lead_id},
    )
    return first_row(row)


async def history_count(session: AsyncSession, lead_id: UUID) -> int:
    row = await session.execute(
        text("SELECT count(*) FROM assignment_history WHERE lead_id = :id"), {"id": lead_id}
    )
    count: int = row.scalar_one()
    return count


async def find_assignment(session: AsyncSession, lead_id: UUID) -> dict[str, Any] | None:
    row = await session.execute(
        text(
            "SELECT lead_id, rep_id, territory_id, strategy, ruleset_version, reason, "
            "explanation, assigned_at, status, reassignments, previous_rep_id "
            "FROM assignments WHERE lead_id = :id"
        ),
        {"id": lead_id},
    )
    return first_row(row)


async def assignment_history(session: AsyncSession, lead_id: UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT kind, rep_id, territory_id, strategy, reason, assigned_at "
            "FROM assignment_history WHERE lead_id = :id ORDER BY id"
        ),
        {"id": lead_id},
    )
    return [dict(r._mapping) for r in rows]


async def close_lead(session: AsyncSession, lead_id: UUID, *, status: str) -> None:
    """The lead is no longer open (converted, disqualified, deleted, merged)."""
    await session.execute(
        text(
            """
            WITH closed AS (
                UPDATE assignments SET status = :status
                WHERE lead_id = :id AND status = 'open'
                RETURNING rep_id
            )
            UPDATE rep_lead_counts c SET open_leads = c.open_leads - 1
            FROM closed WHERE c.rep_id = closed.rep_id
            """
        ),
        {"id": lead_id, "status": status},
    )


async def open_leads_of(session: AsyncSession, rep_id: UUID) -> list[UUID]:
    rows = await session.execute(
        text(
            "SELECT lead_id FROM assignments WHERE rep_id = :id AND status = 'open' "
            "ORDER BY assigned_at, lead_id"
        ),
        {"id": rep_id},
    )
    return [r.lead_id for r in rows]


QueuePlace = tuple[datetime, UUID]  # (queued at, lead id): where a pass over the queue is


async def claim_queued_leads(
    session: AsyncSession, *, limit: int, after: QueuePlace | None = None
) -> list[QueuePlace]:
    """Leads waiting in the fallback queue, oldest first from ``after`` on, skipped by other
    copies."""
    since, lead_id = after or (datetime.min.replace(tzinfo=UTC), UUID(int=0))
    rows = await session.execute(
        text(
            "SELECT lead_id, assigned_at FROM assignments "
            "WHERE rep_id IS NULL AND status = 'open' "
            "AND (assigned_at, lead_id) > (:since, :lead_id) "
            "ORDER BY assigned_at, lead_id LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit, "since": since, "lead_id": lead_id},
    )
    return [(r.assigned_at, r.lead_id) for r in rows]


async def withdraw_lead(
    session: AsyncSession, lead_id: UUID, *, reason: str, merged_into_id: UUID | None = None
) -> None:
    await session.execute(
        text(
            "INSERT INTO withdrawn_leads (lead_id, reason, merged_into_id) "
            "VALUES (:id, :reason, :into) ON CONFLICT (lead_id) DO NOTHING"
        ),
        {"id": lead_id, "reason": reason, "into": merged_into_id},
    )


def json_list(values: Sequence[Mapping[str, Any]]) -> str:
    return orjson.dumps(list(values)).decode()
