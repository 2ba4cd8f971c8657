"""All of ingest's SQL. Batches use unnest() so a 1,000-event request is a few statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.envelope import name_uuid
from salesops_ingest.domain.model import RecordKey

# A CRM record's canonical id is derived from its identity, so replays mint the same id;
# the registry stays authoritative (a merged duplicate may point elsewhere).
RECORD_NAMESPACE = UUID("0d6b3c5e-8f0a-4a39-9b7e-3c2f1a4d5e60")

# Register what is new and read back every id in one statement: the CTE's insert and the
# select see the same snapshot, so ids inserted here come from RETURNING.
_RESOLVE = """
    WITH wanted AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
            AS w(id, kind, source, tenant, source_id)
    ), added AS (
        INSERT INTO entities (id, kind, source, tenant, source_id)
        SELECT id, kind, source, tenant, source_id FROM wanted
        ON CONFLICT (kind, source, tenant, source_id) DO NOTHING
        RETURNING id, kind, source, tenant, source_id
    )
    SELECT id, kind, source, tenant, source_id FROM added
    UNION ALL
    SELECT e.id, e.kind, e.source, e.tenant, e.source_id
    FROM entities e JOIN wanted w USING (kind, source, tenant, source_id)
"""


def proposed_id(key: RecordKey) -> UUID:
    return name_uuid(RECORD_NAMESPACE, f"{key.kind}/{key.source}/{key.tenant}/{key.source_id}")


async def resolve_records_conn(
    conn: asyncpg.Connection, keys: set[RecordKey]
) -> dict[RecordKey, UUID]:
    """Canonical ids of CRM records, registering the ones seen for the first time."""
    # A stable order keeps concurrent transactions from locking registry rows in opposite
    # orders.
    ordered = sorted(keys)
    ids = await _register_and_resolve(conn, ordered)
    missing = [k for k in ordered if k not in ids]
    if missing:
        # Registered by a concurrent transaction that committed after this statement's
        # snapshot was taken: a new statement sees it.
        ids.update(await _register_and_resolve(conn, missing))
    return ids


async def _register_and_resolve(
    conn: asyncpg.Connection, keys: Sequence[RecordKey]
) -> dict[RecordKey, UUID]:
    rows = await conn.fetch(
        _RESOLVE,
        [proposed_id(k) for k in keys],
        [k.kind for k in keys],
        [k.source for k in keys],
        [k.tenant for k in keys],
        [k.source_id for k in keys],
    )
    return {RecordKey(r["kind"], r["source"], r["tenant"], r["source_id"]): r["id"] for r in rows}


async def find_entities(
    session: AsyncSession, *, source: str, tenant: str, source_id: str, kind: str | None
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT id, kind, source, tenant, source_id FROM entities WHERE source = :source "
            "AND tenant = :tenant AND source_id = :source_id "
            "AND (CAST(:kind AS text) IS NULL OR kind = :kind) ORDER BY kind"
        ),
        {"source": source, "tenant": tenant, "source_id": source_id, "kind": kind},
    )
    return [dict(r._mapping) for r in rows]


async def lock_idempotency_key(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """Serialize requests with one key; returns the stored answer of an earlier one."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
    row = await session.execute(
        text("SELECT request_hash, status, response FROM idempotency_keys WHERE key = :k"),
        {"k": key},
    )
    found = row.first()
    return dict(found._mapping) if found else None


async def store_idempotent_response(
    session: AsyncSession, *, key: str, request_hash: str, status: int, response: bytes
) -> None:
    await session.execute(
        text(
            "INSERT INTO idempotency_keys (key, request_hash, status, response) "
            "VALUES (:k, :h, :s, CAST(:r AS jsonb))"
        ),
        {"k": key, "h": request_hash, "s": status, "r": response.decode()},
    )
