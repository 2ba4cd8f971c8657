"""Routing's SQL on the decision path, on the asyncpg connection under the session's
transaction (:func:`salesops_common.db.driver_connection`): a consumer batch of leads is read
and stored in a few set-based statements, without SQLAlchemy's per-statement machinery
(measured: it was half of routing's CPU per lead)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common.erasure import PERSONAL_FIELDS, null_personal_sql
from salesops_common.writes import Statement
from salesops_routing.domain.accounts import AccountCandidate
from salesops_routing.domain.assignment import Assignment

AccountKey = tuple[UUID | None, str | None, str | None]  # (account id, domain, name key)
# A candidate account, with its attributes and its territory.
AccountRow = tuple[AccountCandidate, Mapping[str, Any], str | None]

_REP_COLUMNS = (
    "id, turn, name, email, active, role, team, time_zone, manager_id, working_hours, "
    "capacity_per_day, capacity_per_week, out_of_office"
)

# --- reads ------------------------------------------------------------------------------


async def withdrawal_reasons(conn: asyncpg.Connection, lead_ids: Sequence[UUID]) -> dict[UUID, str]:
    """Why leads must never be routed (merged, deleted); leads that may be are not named."""
    rows = await conn.fetch(
        "SELECT lead_id, reason FROM withdrawn_leads WHERE lead_id = ANY($1::uuid[])",
        list(lead_ids),
    )
    return {r["lead_id"]: r["reason"] for r in rows}


async def assigned_leads(conn: asyncpg.Connection, lead_ids: Sequence[UUID]) -> set[UUID]:
    """Those of the leads that already have an assignment."""
    rows = await conn.fetch(
        "SELECT lead_id FROM assignments WHERE lead_id = ANY($1::uuid[])", list(lead_ids)
    )
    return {r["lead_id"] for r in rows}


async def load_reps(
    conn: asyncpg.Connection,
    *,
    ids: Collection[UUID] = (),
    emails: Collection[str] = (),
    everyone: bool = False,
) -> list[dict[str, Any]]:
    """Reps by id or e-mail (case-blind), or every rep, in rotation order."""
    if everyone:
        rows = await conn.fetch(f"SELECT {_REP_COLUMNS} FROM reps ORDER BY turn")
    else:
        rows = await conn.fetch(
            f"SELECT {_REP_COLUMNS} FROM reps "
            "WHERE id = ANY($1::uuid[]) OR lower(email) = ANY($2::text[]) ORDER BY turn",
            list(ids),
            [e.lower() for e in emails],
        )
    return [dict(r) for r in rows]


_CANDIDATES = """
    SELECT x.n, a.id, a.name, a.domain, a.owner_id, a.attributes, a.territory_id
    FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS x(id, domain, key, n)
    CROSS JOIN LATERAL (
        SELECT * FROM accounts
        WHERE NOT deleted AND (id = x.id OR domain = x.domain OR name_key = x.key)
        ORDER BY id LIMIT $4
    ) a
"""


async def account_candidates(
    conn: asyncpg.Connection, keys: Sequence[AccountKey], *, limit: int = 50
) -> dict[AccountKey, list[AccountRow]]:
    """Per (account id, domain, name key) of a lead, the accounts it may belong to — that
    id, that domain, or a name sharing the first word (the fuzzy comparison is the domain's)
    — with their attributes and territory."""
    wanted = [k for k in keys if any(k)]
    if not wanted:
        return {}
    rows = await conn.fetch(
        _CANDIDATES,
        [k[0] for k in wanted],
        [k[1] for k in wanted],
        [k[2] for k in wanted],
        limit,
    )
    out: dict[AccountKey, list[AccountRow]] = {}
    for r in rows:
        candidate = AccountCandidate(r["id"], r["name"], r["domain"], r["owner_id"])
        out.setdefault(wanted[r["n"] - 1], []).append(
            (candidate, r["attributes"] or {}, r["territory_id"])
        )
    return out


_LOCK_ROTATIONS = (
    "SELECT territory_id, virtual_time FROM rotations WHERE territory_id = ANY($1::text[]) "
    "ORDER BY territory_id FOR UPDATE"
)


async def lock_rotations(
    conn: asyncpg.Connection, territory_ids: Sequence[str]
) -> dict[str, float]:
    """The territories' rotation clocks, locked until the transaction ends, in one order:
    copies of the service in one consumer group take turns on these rows, so none breaks a
    rotation. A territory's row is made the first time it is needed."""
    clocks = await _clocks(conn, _LOCK_ROTATIONS, territory_ids)
    missing = [t for t in territory_ids if t not in clocks]
    if missing:
        await conn.execute(
            "INSERT INTO rotations (territory_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            missing,
        )
        clocks.update(await _clocks(conn, _LOCK_ROTATIONS, missing))
    return clocks


async def rotation_clocks(
    conn: asyncpg.Connection, territory_ids: Sequence[str]
) -> dict[str, float]:
    """The clocks without a lock (a simulation keeps nothing)."""
    query = "SELECT territory_id, virtual_time FROM rotations WHERE territory_id = ANY($1::text[])"
    return await _clocks(conn, query, territory_ids)


async def _clocks(conn: asyncpg.Connection, query: str, ids: Sequence[str]) -> dict[str, float]:
    return {r["territory_id"]: r["virtual_time"] for r in await conn.fetch(query, list(ids))}


async def rotation_positions(
    conn: asyncpg.Connection, territory_ids: Sequence[str]
) -> dict[str, dict[UUID, float]]:
    rows = await conn.fetch(
        "SELECT territory_id, rep_id, position FROM rotation_members "
        "WHERE territory_id = ANY($1::text[])",
        list(territory_ids),
    )
    out: dict[str, dict[UUID, float]] = {}
    for r in rows:
        out.setdefault(r["territory_id"], {})[r["rep_id"]] = r["position"]
    return out


async def lock_reps(conn: asyncpg.Connection, rep_ids: Iterable[UUID]) -> None:
    """Serialize decisions that give leads to one rep from different territories, so that
    capacity counts read after the lock are exact (in one order: no deadlock between them)."""
    await conn.execute(
        "SELECT 1 FROM reps WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", list(rep_ids)
    )


async def assignment_counts(
    conn: asyncpg.Connection, windows: Mapping[UUID, tuple[datetime, datetime]]
) -> dict[UUID, tuple[int, int]]:
    """Leads assigned to each rep since (start of their day, start of their week)."""
    if not windows:
        return {}
    ids = list(windows)
    rows = await conn.fetch(
        """
        SELECT w.rep_id,
               count(h.id) FILTER (WHERE h.assigned_at >= w.day_start) AS today,
               count(h.id) AS week
        FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])
             AS w(rep_id, day_start, week_start)
        LEFT JOIN assignment_history h ON h.rep_id = w.rep_id AND h.assigned_at >= w.week_start
        GROUP BY w.rep_id
        """,
        ids,
        [windows[i][0] for i in ids],
        [windows[i][1] for i in ids],
    )
    return {r["rep_id"]: (r["today"], r["week"]) for r in rows}


async def open_lead_counts(conn: asyncpg.Connection, rep_ids: Collection[UUID]) -> dict[UUID, int]:
    """Each rep's open leads, as kept with the assignments (one row a rep, not a count of
    every open lead)."""
    rows = await conn.fetch(
        "SELECT rep_id, open_leads FROM rep_lead_counts "
        "WHERE rep_id = ANY($1::uuid[]) AND open_leads <> 0",
        list(rep_ids),
    )
    return {r["rep_id"]: r["open_leads"] for r in rows}


# --- writes -----------------------------------------------------------------------------


async def erase_lead(conn: asyncpg.Connection, lead_id: UUID) -> None:
    """Null the lead's personal attributes (``lead.erased``); its assignment, history and
    timers name it by id only and stay as they are."""
    await conn.execute(
        f"UPDATE leads SET attributes = {null_personal_sql('attributes', '$2::text[]')} "
        "WHERE id = $1 AND attributes ?| $2::text[]",
        lead_id,
        list(PERSONAL_FIELDS),
    )


_SAVE_LEADS = """
    INSERT INTO leads (id, attributes, created_at)
    SELECT x.id, x.attrs::jsonb, x.created_at
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(id, attrs, created_at)
    {where}
    ON CONFLICT (id) DO UPDATE SET attributes = leads.attributes || EXCLUDED.attributes
"""
# The same, in one round trip with the withdrawal reasons: only leads not withdrawn are kept.
_SAVE_ROUTABLE = (
    """
    WITH withdrawn AS (
        SELECT lead_id, reason FROM withdrawn_leads WHERE lead_id = ANY($1::uuid[])
    ), saved AS ("""
    + _SAVE_LEADS.format(where="WHERE x.id NOT IN (SELECT lead_id FROM withdrawn)")
    + """)
    SELECT lead_id, reason FROM withdrawn
"""
)

LeadRow = tuple[UUID, Mapping[str, Any], datetime | None]  # (lead id, attributes, created at)


def _lead_columns(leads: Sequence[LeadRow]) -> list[list[Any]]:
    return [
        [lead_id for lead_id, _, _ in leads],
        [orjson.dumps(attributes).decode() for _, attributes, _ in leads],
        [created_at for _, _, created_at in leads],
    ]


async def save_leads(conn: asyncpg.Connection, leads: Sequence[LeadRow]) -> None:
    """Store (lead id, attributes, created at); what is known of a lead is merged with."""
    await conn.execute(_SAVE_LEADS.format(where=""), *_lead_columns(leads))


async def save_routable_leads(
    conn: asyncpg.Connection, leads: Sequence[LeadRow]
) -> dict[UUID, str]:
    """:func:`save_leads` for the leads that may be routed; returns why the others must never
    be (:func:`withdrawal_reasons`), in one statement: a consumer batch's first write."""
    rows = await conn.fetch(_SAVE_ROUTABLE, *_lead_columns(leads))
    return {r["lead_id"]: r["reason"] for r in rows}


# The history rows of the decisions that were stored (a lead assigned meanwhile is not).
_HISTORY = """
    INSERT INTO assignment_history (lead_id, kind, rep_id, territory_id, strategy, reason,
                                    event_id, assigned_at)
    SELECT x.lead_id, $11::text, x.rep_id, x.territory_id, x.strategy, x.reason, x.event_id,
           x.assigned_at
    FROM x JOIN stored USING (lead_id)
    ORDER BY x.n
    RETURNING lead_id
"""
_DECISIONS = """
    WITH x AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[],
                             $6::text[], $7::text[], $8::uuid[], $9::timestamptz[],
                             $10::uuid[])
        WITH ORDINALITY AS x(lead_id, rep_id, territory_id, strategy, ruleset_version,
                             reason, explanation, event_id, assigned_at, previous_rep_id, n)
    )
"""
# Each rep's lead counts follow the assignments stored (``moves``: a rep and what it gains
# or loses), one row per rep in rep order (two transactions lock them in the same order).
# The statement's snapshot is taken before its UPDATE: ``old`` holds what was replaced.
_COUNTED = """
    , counted AS (
        INSERT INTO rep_lead_counts AS c (rep_id, assigned_leads, open_leads)
        SELECT rep_id, sum(assigned), sum(open) FROM moves
        WHERE rep_id IS NOT NULL GROUP BY rep_id ORDER BY rep_id
        ON CONFLICT (rep_id) DO UPDATE
        SET assigned_leads = c.assigned_leads + EXCLUDED.assigned_leads,
            open_leads = c.open_leads + EXCLUDED.open_leads
    )
"""
_ADD = (
    _DECISIONS
    + """
    , stored AS (
        INSERT INTO assignments (lead_id, rep_id, territory_id, strategy, ruleset_version,
                                 reason, explanation, event_id, assigned_at, previous_rep_id)
        SELECT lead_id, rep_id, territory_id, strategy, ruleset_version, reason,
               explanation::jsonb, event_id, assigned_at, previous_rep_id
        FROM x ORDER BY n
        ON CONFLICT (lead_id) DO NOTHING
        RETURNING lead_id
    ), moves AS (
        SELECT x.rep_id, 1 AS assigned, 1 AS open FROM x JOIN stored USING (lead_id)
    )
"""
    + _COUNTED
    + _HISTORY
)
_REPLACE = (
    _DECISIONS
    + """
    , old AS (
        SELECT a.lead_id, a.rep_id, a.status FROM assignments a JOIN x USING (lead_id)
    ), stored AS (
        UPDATE assignments a SET rep_id = x.rep_id, territory_id = x.territory_id,
            strategy = x.strategy, ruleset_version = x.ruleset_version, reason = x.reason,
            explanation = x.explanation::jsonb, event_id = x.event_id,
            assigned_at = x.assigned_at, previous_rep_id = x.previous_rep_id,
            reassignments = a.reassignments + 1
        FROM x WHERE a.lead_id = x.lead_id
        RETURNING a.lead_id
    ), moves AS (
        SELECT o.rep_id, -1 AS assigned, -(o.status = 'open')::int AS open
        FROM old o JOIN stored USING (lead_id)
        UNION ALL
        SELECT x.rep_id, 1, (o.status = 'open')::int
        FROM x JOIN old o USING (lead_id) JOIN stored USING (lead_id)
    )
"""
    + _COUNTED
    + _HISTORY
)


async def add_assignments(conn: asyncpg.Connection, assignments: Sequence[Assignment]) -> set[UUID]:
    """Store leads' first assignments and their history; returns the leads stored (a lead
    already assigned is not)."""
    return await _store(conn, _ADD, assignments, "assigned")


async def replace_assignments(
    conn: asyncpg.Connection, assignments: Sequence[Assignment]
) -> set[UUID]:
    return await _store(conn, _REPLACE, assignments, "reassigned")


async def _store(
    conn: asyncpg.Connection, query: str, assignments: Sequence[Assignment], kind: str
) -> set[UUID]:
    if not assignments:
        return set()
    rows = await conn.fetch(
        query,
        [a.lead_id for a in assignments],
        [a.rep_id for a in assignments],
        [a.territory_id for a in assignments],
        [a.strategy for a in assignments],
        [a.ruleset_version for a in assignments],
        [a.reason for a in assignments],
        [orjson.dumps(a.explanation).decode() for a in assignments],
        [a.event_id for a in assignments],
        [a.assigned_at for a in assignments],
        [a.previous_rep_id for a in assignments],
        kind,
    )
    return {r["lead_id"] for r in rows}


def rotation_writes(
    clocks: Mapping[str, float], positions: Mapping[tuple[str, UUID], float]
) -> list[Statement]:
    """Where the decisions left the rotations, to store (:func:`writes.execute`)."""
    if not clocks:
        return []
    keys = sorted(positions, key=lambda k: (k[0], str(k[1])))
    return [
        (
            """
            UPDATE rotations r SET virtual_time = x.clock, updated_at = now()
            FROM unnest($1::text[], $2::float8[]) AS x(id, clock)
            WHERE r.territory_id = x.id
            """,
            [list(clocks), [float(c) for c in clocks.values()]],
        ),
        (
            """
            INSERT INTO rotation_members (territory_id, rep_id, position)
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::float8[])
            ON CONFLICT (territory_id, rep_id) DO UPDATE SET position = EXCLUDED.position
            """,
            [[t for t, _ in keys], [r for _, r in keys], [float(positions[k]) for k in keys]],
        ),
    ]
