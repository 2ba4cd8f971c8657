"""Routing's SQL for reps, leads, rotations and assignments."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_routing.domain.assignment import Assignment
from salesops_routing.domain.roster import ROUTING_ATTRIBUTES

_REP_COLUMNS = (
    "id, turn, name, email, active, role, team, time_zone, manager_id, working_hours, "
    "capacity_per_day, capacity_per_week, out_of_office"
)
_REPS_WITH_COUNTS = text(
    f"""
    SELECT {_REP_COLUMNS}, coalesce(a.leads, 0) AS assigned_leads,
           coalesce(a.open_leads, 0) AS open_leads
    FROM reps r
    LEFT JOIN (SELECT rep_id, count(*) AS leads,
                      count(*) FILTER (WHERE status = 'open') AS open_leads
               FROM assignments WHERE rep_id IS NOT NULL GROUP BY rep_id) a ON a.rep_id = r.id
    ORDER BY r.turn
    """
)
_ADD_ASSIGNMENT = text(
    """
    INSERT INTO assignments (lead_id, rep_id, territory_id, strategy, ruleset_version, reason,
                             explanation, event_id, assigned_at, previous_rep_id)
    VALUES (:lead_id, :rep_id, :territory_id, :strategy, :ruleset_version, :reason,
            CAST(:explanation AS jsonb), :event_id, :assigned_at, :previous_rep_id)
    ON CONFLICT (lead_id) DO NOTHING
    RETURNING lead_id
    """
)
_REPLACE_ASSIGNMENT = text(
    """
    UPDATE assignments SET rep_id = :rep_id, territory_id = :territory_id, strategy = :strategy,
        ruleset_version = :ruleset_version, reason = :reason,
        explanation = CAST(:explanation AS jsonb), event_id = :event_id,
        assigned_at = :assigned_at, previous_rep_id = :previous_rep_id,
        reassignments = reassignments + 1
    WHERE lead_id = :lead_id
    """
)
_ADD_HISTORY = text(
    """
    INSERT INTO assignment_history (lead_id, kind, rep_id, territory_id, strategy, reason,
                                    event_id, assigned_at)
    VALUES (:lead_id, :kind, :rep_id, :territory_id, :strategy, :reason, :event_id,
            :assigned_at)
    """
)


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
    rows = await session.execute(_REPS_WITH_COUNTS)
    return [dict(r._mapping) for r in rows]


async def find_rep(session: AsyncSession, rep_id: UUID) -> dict[str, Any] | None:
    rows = [r for r in await reps_with_assignment_counts(session) if r["id"] == rep_id]
    return rows[0] if rows else None


async def load_reps(
    session: AsyncSession,
    *,
    ids: Collection[UUID] = (),
    emails: Collection[str] = (),
    everyone: bool = False,
) -> list[dict[str, Any]]:
    """Reps by id or e-mail (case-blind), or every rep, in rotation order."""
    where = "true" if everyone else "id = ANY(:ids) OR lower(email) = ANY(:emails)"
    rows = await session.execute(
        text(f"SELECT {_REP_COLUMNS} FROM reps WHERE {where} ORDER BY turn"),
        {"ids": list(ids), "emails": [e.lower() for e in emails]},
    )
    return [dict(r._mapping) for r in rows]


async def roster(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(text("SELECT id, email, active, role FROM reps ORDER BY turn"))
    return [dict(r._mapping) for r in rows]


async def assignment_counts(
    session: AsyncSession, windows: Mapping[UUID, tuple[datetime, datetime]]
) -> dict[UUID, tuple[int, int]]:
    """Leads assigned to each rep since (start of their day, start of their week)."""
    if not windows:
        return {}
    ids = list(windows)
    rows = await session.execute(
        text(
            """
            SELECT w.rep_id,
                   count(h.id) FILTER (WHERE h.assigned_at >= w.day_start) AS today,
                   count(h.id) AS week
            FROM unnest(CAST(:ids AS uuid[]), CAST(:days AS timestamptz[]),
                        CAST(:weeks AS timestamptz[])) AS w(rep_id, day_start, week_start)
            LEFT JOIN assignment_history h
                   ON h.rep_id = w.rep_id AND h.assigned_at >= w.week_start
            GROUP BY w.rep_id
            """
        ),
        {
            "ids": ids,
            "days": [windows[i][0] for i in ids],
            "weeks": [windows[i][1] for i in ids],
        },
    )
    return {r.rep_id: (r.today, r.week) for r in rows}


async def open_lead_counts(session: AsyncSession, rep_ids: Collection[UUID]) -> dict[UUID, int]:
    rows = await session.execute(
        text(
            "SELECT rep_id, count(*) AS n FROM assignments "
            "WHERE status = 'open' AND rep_id = ANY(:ids) GROUP BY rep_id"
        ),
        {"ids": list(rep_ids)},
    )
    return {r.rep_id: r.n for r in rows}


async def lock_rep(session: AsyncSession, rep_id: UUID) -> None:
    """Serialize decisions that give leads to one rep from different territories, so that
    capacity counts read after the lock are exact."""
    await session.execute(text("SELECT 1 FROM reps WHERE id = :id FOR UPDATE"), {"id": rep_id})


# --- rotations --------------------------------------------------------------------------


async def lock_rotation(session: AsyncSession, territory_id: str) -> float:
    """The territory's rotation clock, locked until the transaction ends: copies of the
    service in one consumer group take turns on this row, so none breaks the rotation."""
    await session.execute(
        text("INSERT INTO rotations (territory_id) VALUES (:t) ON CONFLICT DO NOTHING"),
        {"t": territory_id},
    )
    row = await session.execute(
        text("SELECT virtual_time FROM rotations WHERE territory_id = :t FOR UPDATE"),
        {"t": territory_id},
    )
    clock: float = row.scalar_one()
    return clock


async def rotation_clock(session: AsyncSession, territory_id: str) -> float:
    """The clock without a lock (a simulation keeps nothing)."""
    row = await session.execute(
        text("SELECT virtual_time FROM rotations WHERE territory_id = :t"), {"t": territory_id}
    )
    clock: float | None = row.scalar()
    return clock or 0.0


async def rotation_positions(session: AsyncSession, territory_id: str) -> dict[UUID, float]:
    rows = await session.execute(
        text("SELECT rep_id, position FROM rotation_members WHERE territory_id = :t"),
        {"t": territory_id},
    )
    return {r.rep_id: r.position for r in rows}


async def advance_rotation(
    session: AsyncSession, territory_id: str, *, rep_id: UUID, position: float, clock: float
) -> None:
    await session.execute(
        text(
            "UPDATE rotations SET virtual_time = :clock, updated_at = now() WHERE territory_id = :t"
        ),
        {"clock": clock, "t": territory_id},
    )
    await session.execute(
        text(
            "INSERT INTO rotation_members (territory_id, rep_id, position) "
            "VALUES (:t, :rep, :pos) ON CONFLICT (territory_id, rep_id) "
            "DO UPDATE SET position = EXCLUDED.position"
        ),
        {"t": territory_id, "rep": rep_id, "pos": position},
    )


# --- leads and assignments --------------------------------------------------------------


async def save_lead(
    session: AsyncSession, lead_id: UUID, attributes: Mapping[str, Any], created_at: Any
) -> None:
    await session.execute(
        text(
            "INSERT INTO leads (id, attributes, created_at) "
            "VALUES (:id, CAST(:attrs AS jsonb), :created_at) "
            "ON CONFLICT (id) DO UPDATE SET attributes = leads.attributes || EXCLUDED.attributes"
        ),
        {"id": lead_id, "attrs": orjson.dumps(attributes).decode(), "created_at": created_at},
    )


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


async def add_assignment(session: AsyncSession, assignment: Assignment) -> bool:
    """Store the lead's first assignment; False if the lead was already assigned."""
    result = await session.execute(_ADD_ASSIGNMENT, _assignment_params(assignment))
    if result.first() is None:
        return False
    await session.execute(_ADD_HISTORY, _history_params(assignment))
    return True


async def replace_assignment(session: AsyncSession, assignment: Assignment) -> None:
    await session.execute(_REPLACE_ASSIGNMENT, _assignment_params(assignment))
    await session.execute(_ADD_HISTORY, _history_params(assignment))


def _assignment_params(assignment: Assignment) -> dict[str, Any]:
    return {
        "lead_id": assignment.lead_id,
        "rep_id": assignment.rep_id,
        "territory_id": assignment.territory_id,
        "strategy": assignment.strategy,
        "ruleset_version": assignment.ruleset_version,
        "reason": assignment.reason,
        "explanation": orjson.dumps(assignment.explanation).decode(),
        "event_id": assignment.event_id,
        "assigned_at": assignment.assigned_at,
        "previous_rep_id": assignment.previous_rep_id,
    }


def _history_params(assignment: Assignment) -> dict[str, Any]:
    return {
        "lead_id": assignment.lead_id,
        "kind": assignment.kind,
        "rep_id": assignment.rep_id,
        "territory_id": assignment.territory_id,
        "strategy": assignment.strategy,
        "reason": assignment.reason,
        "event_id": assignment.event_id,
        "assigned_at": assignment.assigned_at,
    }


async def lock_open_assignment(session: AsyncSession, lead_id: UUID) -> dict[str, Any] | None:
    """The lead's current assignment while it is open, locked for a reassignment."""
    row = await session.execute(
        text(
            "SELECT lead_id, rep_id, reassignments FROM assignments "
            "WHERE lead_id = :id AND status = 'open' FOR UPDATE"
        ),
        {"id": lead_id},
    )
    found = row.first()
    return dict(found._mapping) if found else None


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
    found = row.first()
    return dict(found._mapping) if found else None


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
        text("UPDATE assignments SET status = :status WHERE lead_id = :id AND status = 'open'"),
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


async def withdrawal_reason(session: AsyncSession, lead_id: UUID) -> str | None:
    """Why a lead must never be routed (merged, deleted), or None if it may be."""
    row = await session.execute(
        text("SELECT reason FROM withdrawn_leads WHERE lead_id = :id"), {"id": lead_id}
    )
    reason: str | None = row.scalar()
    return reason


def json_list(values: Sequence[Mapping[str, Any]]) -> str:
    return orjson.dumps(list(values)).decode()
