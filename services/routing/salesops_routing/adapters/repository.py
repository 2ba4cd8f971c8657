"""All of routing's SQL: the rep roster, rotations, assignments and withdrawn leads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_routing.domain.assignment import Assignment
from salesops_routing.domain.roster import ROUTING_ATTRIBUTES
from salesops_routing.domain.rotation import RULESET_VERSION, RoutableRep

_LOCK_ROTATION = text("SELECT last_turn FROM rotations WHERE territory_id = :t FOR UPDATE")
_ADD_ASSIGNMENT = text(
    """
    INSERT INTO assignments (lead_id, rep_id, territory_id, strategy, ruleset_version, reason,
                             explanation, event_id, assigned_at)
    VALUES (:lead_id, :rep_id, :territory_id, :strategy, :ruleset_version, :reason,
            CAST(:explanation AS jsonb), :event_id, :assigned_at)
    ON CONFLICT (lead_id) DO NOTHING
    RETURNING lead_id
    """
)
_REPS_WITH_COUNTS = text(
    """
    SELECT r.id, r.name, r.email, r.active, r.role, r.team, r.time_zone, r.manager_id,
           r.turn, coalesce(a.leads, 0) AS assigned_leads
    FROM reps r
    LEFT JOIN (SELECT rep_id, count(*) AS leads FROM assignments
               WHERE rep_id IS NOT NULL GROUP BY rep_id) a ON a.rep_id = r.id
    ORDER BY r.turn
    """
)


async def save_rep(session: AsyncSession, rep_id: UUID, attributes: Mapping[str, Any]) -> None:
    """Insert a rep or merge the stated attributes into what is known; others stay as they are."""
    columns = [c for c in ROUTING_ATTRIBUTES if c in attributes]  # a fixed allowlist
    names = ", ".join(["id", *columns])
    values = ", ".join(f":{c}" for c in ["id", *columns])
    merged = ", ".join([*(f"{c} = EXCLUDED.{c}" for c in columns), "updated_at = now()"])
    await session.execute(
        text(
            f"INSERT INTO reps ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {merged}"
        ),
        {"id": rep_id, **{c: attributes[c] for c in columns}},
    )


async def routable_reps(session: AsyncSession) -> list[RoutableRep]:
    rows = await session.execute(text("SELECT id, turn, name, active, role FROM reps"))
    return [RoutableRep(r.id, r.turn, r.name, r.active, r.role) for r in rows]


async def reps_with_assignment_counts(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(_REPS_WITH_COUNTS)
    return [dict(r._mapping) for r in rows]


async def lock_rotation(session: AsyncSession, territory_id: str) -> int | None:
    """The turn served last in the territory, locked until the transaction ends: copies of
    the service in one consumer group take turns on this row, so none breaks the rotation."""
    row = (await session.execute(_LOCK_ROTATION, {"t": territory_id})).first()
    if row is None:
        await session.execute(
            text("INSERT INTO rotations (territory_id) VALUES (:t) ON CONFLICT DO NOTHING"),
            {"t": territory_id},
        )
        row = (await session.execute(_LOCK_ROTATION, {"t": territory_id})).one()
    last_turn: int | None = row.last_turn
    return last_turn


async def advance_rotation(session: AsyncSession, territory_id: str, *, served: int) -> None:
    await session.execute(
        text("UPDATE rotations SET last_turn = :turn, updated_at = now() WHERE territory_id = :t"),
        {"turn": served, "t": territory_id},
    )


async def add_assignment(session: AsyncSession, assignment: Assignment) -> bool:
    """Store the lead's assignment; False if the lead was already assigned."""
    decision = assignment.decision
    result = await session.execute(
        _ADD_ASSIGNMENT,
        {
            "lead_id": assignment.lead_id,
            "rep_id": assignment.rep_id,
            "territory_id": decision.territory_id,
            "strategy": decision.strategy,
            "ruleset_version": RULESET_VERSION,
            "reason": decision.reason,
            "explanation": orjson.dumps(decision.explanation()).decode(),
            "event_id": assignment.event_id,
            "assigned_at": assignment.assigned_at,
        },
    )
    return result.first() is not None


async def find_assignment(session: AsyncSession, lead_id: UUID) -> dict[str, Any] | None:
    row = await session.execute(
        text(
            "SELECT lead_id, rep_id, territory_id, strategy, ruleset_version, reason, "
            "explanation, assigned_at FROM assignments WHERE lead_id = :id"
        ),
        {"id": lead_id},
    )
    found = row.first()
    return dict(found._mapping) if found else None


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


async def withdrawal_reason(session: AsyncSession, lead_id: UUID) -> str | None:
    """Why a lead must never be routed (merged, deleted), or None if it may be."""
    row = await session.execute(
        text("SELECT reason FROM withdrawn_leads WHERE lead_id = :id"), {"id": lead_id}
    )
    reason: str | None = row.scalar()
    return reason
