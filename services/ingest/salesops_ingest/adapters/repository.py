"""All of ingest's SQL. Batches use unnest() so a 1,000-event request is a few statements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_ingest.domain.model import RecordKey, ValidEvent

# A CRM record's canonical id is derived from its identity, so replays mint the same id;
# the registry stays authoritative (a merged duplicate may point elsewhere).
RECORD_NAMESPACE = UUID("0d6b3c5e-8f0a-4a39-9b7e-3c2f1a4d5e60")

_REGISTER = text(
    """
    INSERT INTO entities (id, kind, source, tenant, source_id)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:kinds AS text[]), CAST(:sources AS text[]),
                         CAST(:tenants AS text[]), CAST(:source_ids AS text[]))
    ON CONFLICT (kind, source, tenant, source_id) DO NOTHING
    """
)
_RESOLVE = text(
    """
    SELECT e.id, e.kind, e.source, e.tenant, e.source_id
    FROM entities e
    JOIN unnest(CAST(:kinds AS text[]), CAST(:sources AS text[]), CAST(:tenants AS text[]),
                CAST(:source_ids AS text[])) AS k(kind, source, tenant, source_id)
      USING (kind, source, tenant, source_id)
    """
)
_RECEIVE = text(
    """
    INSERT INTO received_events (event_id, source, tenant, source_event_id, type, entity_id,
                                 occurred_at, payload)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:sources AS text[]),
        CAST(:tenants AS text[]), CAST(:source_event_ids AS text[]), CAST(:types AS text[]),
        CAST(:entity_ids AS uuid[]), CAST(:occurred AS timestamptz[]), CAST(:payloads AS jsonb[]))
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)


def proposed_id(key: RecordKey) -> UUID:
    return uuid.uuid5(RECORD_NAMESPACE, f"{key.kind}/{key.source}/{key.tenant}/{key.source_id}")


def _columns(keys: Sequence[RecordKey]) -> dict[str, list[str]]:
    return {
        "kinds": [k.kind for k in keys],
        "sources": [k.source for k in keys],
        "tenants": [k.tenant for k in keys],
        "source_ids": [k.source_id for k in keys],
    }


async def resolve_records(session: AsyncSession, keys: set[RecordKey]) -> dict[RecordKey, UUID]:
    """Canonical ids of CRM records, registering the ones seen for the first time."""
    ordered = sorted(keys, key=lambda k: (k.kind, k.source, k.tenant, k.source_id))
    cols = _columns(ordered)
    await session.execute(_REGISTER, {"ids": [str(proposed_id(k)) for k in ordered], **cols})
    rows = await session.execute(_RESOLVE, cols)
    return {RecordKey(r.kind, r.source, r.tenant, r.source_id): r.id for r in rows}


async def record_received(
    session: AsyncSession, events: Sequence[ValidEvent], entity_ids: Sequence[UUID]
) -> set[UUID]:
    """Store deliveries; returns the ids that were new (the rest are duplicates)."""
    result = await session.execute(
        _RECEIVE,
        {
            "ids": [str(v.event.event_id) for v in events],
            "sources": [v.event.source for v in events],
            "tenants": [v.event.tenant for v in events],
            "source_event_ids": [v.event.source_event_id for v in events],
            "types": [v.event.type for v in events],
            "entity_ids": [str(i) for i in entity_ids],
            "occurred": [v.event.occurred_at for v in events],
            "payloads": [orjson.dumps(v.event.model_dump(mode="json")).decode() for v in events],
        },
    )
    return {row[0] for row in result}


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
