"""All of ingest's SQL. Batches use unnest() so a 1,000-event request is a few statements."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.envelope import name_uuid
from salesops_ingest.domain.model import RecordKey

# A CRM record's canonical id is derived from its identity, so replays mint the same id;
# the registry stays authoritative (a merged duplicate may point elsewhere).
RECORD_NAMESPACE = UUID("0d6b3c5e-8f0a-4a39-9b7e-3c2f1a4d5e60")


def proposed_id(key: RecordKey) -> UUID:
    return name_uuid(RECORD_NAMESPACE, f"{key.kind}/{key.source}/{key.tenant}/{key.source_id}")


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
