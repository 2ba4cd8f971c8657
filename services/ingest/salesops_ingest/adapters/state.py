"""SQL of the processing pipeline: record state, dedupe window, lead keys, fetch queue,
dead letters and quality tallies. Batches use unnest() so a delivery of 100 changes is a
handful of statements."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common.writes import Statement
from salesops_ingest.adapters.repository import proposed_id
from salesops_ingest.domain.model import RecordKey


def loads_json(value: Any) -> Any:
    """A jsonb column's value, whether or not the connection decodes JSON itself."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


@dataclass(slots=True)
class RecordState:
    """One CRM record as ingest knows it, locked for the transaction."""

    key: RecordKey
    id: UUID
    status: str  # referenced | live | merged | deleted
    state: dict[str, Any]
    stamps: dict[str, int]
    outcome: str | None
    object_type: str | None = None
    dirty: bool = False


_REGISTER = """
    INSERT INTO entities (id, kind, source, tenant, source_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
    ON CONFLICT (kind, source, tenant, source_id) DO NOTHING
"""
# The records changed, locked in one order; then the ids of the records only referred to
# (not locked: a popular owner or account must not serialize every request naming it).
_LOCK_AND_RESOLVE = """
    WITH locked AS MATERIALIZED (
        SELECT e.id, e.kind, e.source, e.tenant, e.source_id, e.status, e.state, e.stamps,
               e.outcome, e.object_type
        FROM entities e
        JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[])
             AS w(kind, source, tenant, source_id)
          USING (kind, source, tenant, source_id)
        ORDER BY e.kind, e.source, e.tenant, e.source_id
        FOR UPDATE OF e
    )
    SELECT true AS locked, * FROM locked
    UNION ALL
    SELECT false, e.id, e.kind, e.source, e.tenant, e.source_id, NULL, NULL, NULL, NULL, NULL
    FROM entities e
    JOIN unnest($5::text[], $6::text[], $7::text[], $8::text[])
         AS r(kind, source, tenant, source_id)
      USING (kind, source, tenant, source_id)
"""


def _columns(keys: Sequence[RecordKey]) -> list[list[str]]:
    return [
        [k.kind for k in keys],
        [k.source for k in keys],
        [k.tenant for k in keys],
        [k.source_id for k in keys],
    ]


async def lock_records(
    conn: asyncpg.Connection, keys: Iterable[RecordKey], refs: Iterable[RecordKey] = ()
) -> tuple[dict[RecordKey, RecordState], dict[RecordKey, UUID]]:
    """Register unseen records, lock ``keys`` for the rest of the transaction and return
    their state, with the ids of ``refs`` (records only referred to, not locked).

    Every record, changed or referred to, is registered in one statement in one stable
    order: registering waits for a concurrent transaction registering the same record, and
    two transactions waiting for each other's new records in opposite orders would
    deadlock. The locks are then taken in one order too."""
    ordered = sorted(set(keys))
    referred = sorted(set(refs) - set(ordered))
    everything = sorted([*ordered, *referred])
    if not everything:
        return {}, {}
    await conn.execute(_REGISTER, [proposed_id(k) for k in everything], *_columns(everything))
    rows = await conn.fetch(_LOCK_AND_RESOLVE, *_columns(ordered), *_columns(referred))
    found: dict[RecordKey, RecordState] = {}
    ids: dict[RecordKey, UUID] = {}
    for r in rows:
        key = RecordKey(r["kind"], r["source"], r["tenant"], r["source_id"])
        ids[key] = r["id"]
        if r["locked"]:
            found[key] = RecordState(
                key=key,
                id=r["id"],
                status=r["status"],
                state=loads_json(r["state"]) or {},
                stamps=loads_json(r["stamps"]) or {},
                outcome=r["outcome"],
                object_type=r["object_type"],
            )
    return found, ids


def record_writes(records: Sequence[RecordState]) -> list[Statement]:
    """The changed records' state, to store (:func:`writes.execute`)."""
    dirty = [r for r in records if r.dirty]
    if not dirty:
        return []
    sql = """
        UPDATE entities e SET id = u.id, status = u.status, state = u.state::jsonb,
               stamps = u.stamps::jsonb, outcome = u.outcome,
               object_type = coalesce(u.object_type, e.object_type), updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[])
             AS u(kind, source, tenant, source_id, id, status, state, stamps, outcome,
                  object_type)
        WHERE (e.kind, e.source, e.tenant, e.source_id)
            = (u.kind, u.source, u.tenant, u.source_id)
    """
    return [
        (
            sql,
            [
                *_columns([r.key for r in dirty]),
                [r.id for r in dirty],
                [r.status for r in dirty],
                [orjson.dumps(r.state).decode() for r in dirty],
                [orjson.dumps(r.stamps).decode() for r in dirty],
                [r.outcome for r in dirty],
                [r.object_type for r in dirty],
            ],
        )
    ]


async def claim_delivery_keys(
    conn: asyncpg.Connection, source_keys: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Record delivery identities; returns those not seen within the window before."""
    if not source_keys:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO seen_deliveries (source, key)
        SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT DO NOTHING
        RETURNING source, key
        """,
        [s for s, _ in source_keys],
        [k for _, k in source_keys],
    )
    return {(r["source"], r["key"]) for r in rows}


async def release_delivery_keys(
    conn: asyncpg.Connection, source_keys: Sequence[tuple[str, str]]
) -> None:
    """Forget identities whose change was dead-lettered, so a retry is not a duplicate."""
    if source_keys:
        await conn.execute(
            "DELETE FROM seen_deliveries WHERE (source, key) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [s for s, _ in source_keys],
            [k for _, k in source_keys],
        )


async def prune_seen(conn: asyncpg.Connection, *, older_than: datetime) -> int:
    result = await conn.execute("DELETE FROM seen_deliveries WHERE seen_at < $1", older_than)
    return int(result.split()[-1])


async def candidate_leads(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> list[tuple[tuple[str, str], UUID, dict[str, Any]]]:
    """Every (key, lead id, identity) indexed under one of ``keys``."""
    if not keys:
        return []
    rows = await conn.fetch(
        """
        SELECT k.key_type, k.value, k.lead_id, k.identity FROM lead_keys k
        JOIN unnest($1::text[], $2::text[]) AS w(key_type, value) USING (key_type, value)
        """,
        [t for t, _ in keys],
        [v for _, v in keys],
    )
    return [((r["key_type"], r["value"]), r["lead_id"], loads_json(r["identity"])) for r in rows]


def lead_key_writes(
    leads: Mapping[UUID, tuple[Sequence[tuple[str, str]], Mapping[str, Any]] | None],
) -> tuple[list[Statement], list[Statement]]:
    """Each lead's keys replaced by the ones given (None: none): the old keys' removal, and
    the new keys, which must be written after it (:func:`writes.execute` each)."""
    if not leads:
        return [], []
    ids = sorted(leads)
    removal: Statement = ("DELETE FROM lead_keys WHERE lead_id = ANY($1::uuid[])", [ids])
    rows = [
        (t, v, lead_id, identity)
        for lead_id in ids
        if (entry := leads[lead_id]) is not None
        for identity in (orjson.dumps(entry[1]).decode(),)
        for t, v in entry[0]
    ]
    if not rows:
        return [removal], []
    sql = """
        INSERT INTO lead_keys (key_type, value, lead_id, identity)
        SELECT t, v, l, i::jsonb FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[])
            AS k(t, v, l, i)
        ON CONFLICT DO NOTHING
    """
    return [removal], [(sql, [list(col) for col in zip(*rows, strict=True)])]


def fetch_writes(jobs: Sequence[tuple[str, str, str, str]]) -> list[Statement]:
    """Records to read from their CRM (:func:`writes.execute`)."""
    jobs = sorted(set(jobs))  # one row may not be upserted twice in a statement
    if not jobs:
        return []
    sql = """
        INSERT INTO fetch_jobs (source, tenant, object_type, source_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT (source, tenant, object_type, source_id)
            DO UPDATE SET due_at = least(fetch_jobs.due_at, now())
    """
    return [(sql, [list(col) for col in zip(*jobs, strict=True)])]


async def record_dead_letters(
    conn: asyncpg.Connection,
    letters: Sequence[tuple[str, int | None, str, str, Any]],
) -> None:
    """(source, delivery id, item key, reason, item): a retry of the same item updates it."""
    if letters:
        await conn.execute(
            """
            INSERT INTO dead_letters (source, delivery_id, item_key, reason, item)
            SELECT s, d, k, r, i::jsonb
            FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
                AS x(s, d, k, r, i)
            ON CONFLICT (source, item_key) DO UPDATE
                SET reason = EXCLUDED.reason, status = 'open',
                    attempts = dead_letters.attempts + 1, updated_at = now()
            """,
            [x[0] for x in letters],
            [x[1] for x in letters],
            [x[2] for x in letters],
            [x[3] for x in letters],
            [orjson.dumps(x[4], default=str).decode() for x in letters],
        )


def resolve_writes(keys: Sequence[tuple[str, str]]) -> list[Statement]:
    """The open dead letters of (source, item key)s now applied, marked resolved."""
    if not keys:
        return []
    sql = """
        UPDATE dead_letters d SET status = 'resolved', updated_at = now()
        FROM unnest($1::text[], $2::text[]) AS k(source, item_key)
        WHERE d.source = k.source AND d.item_key = k.item_key AND d.status = 'open'
    """
    return [(sql, [[s for s, _ in keys], [k for _, k in keys]])]


def quality_writes(counts: Mapping[tuple[str, str], int]) -> list[Statement]:
    """Quality tallies to add (:func:`writes.execute`)."""
    if not counts:
        return []
    items = sorted(counts.items())
    sql = """
        INSERT INTO quality_counts (source, metric, count)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
        ON CONFLICT (source, metric) DO UPDATE
            SET count = quality_counts.count + EXCLUDED.count
    """
    return [(sql, [[s for (s, _), _ in items], [m for (_, m), _ in items], [c for _, c in items]])]
