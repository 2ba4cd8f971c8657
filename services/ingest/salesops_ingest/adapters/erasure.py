"""SQL of an erasure: the lead's records, their personal fields, its duplicate-matching keys,
and the stored documents that may name it (archived deliveries, dead letters, outbox rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common.erasure import PERSONAL_FIELDS
from salesops_ingest.adapters.state import loads_json
from salesops_ingest.domain.model import RecordKey

ERASED_AT = "_erased_at"  # in a record's state: when its personal fields were nulled


async def lock_lead_records(
    conn: asyncpg.Connection, lead_id: UUID
) -> list[tuple[RecordKey, str, dict[str, Any]]]:
    """Every CRM record of the canonical lead ``lead_id`` ingest has seen (its own, and the
    duplicates merged into it), locked, with status and state; none for an unknown lead."""
    rows = await conn.fetch(
        """
        SELECT kind, source, tenant, source_id, status, state FROM entities
        WHERE kind = 'lead' AND id = $1 AND status <> 'referenced'
        ORDER BY kind, source, tenant, source_id
        FOR UPDATE
        """,
        lead_id,
    )
    return [
        (
            RecordKey(r["kind"], r["source"], r["tenant"], r["source_id"]),
            r["status"],
            loads_json(r["state"]) or {},
        )
        for r in rows
    ]


async def null_personal_fields(
    conn: asyncpg.Connection, keys: Sequence[RecordKey], erased_at: str
) -> None:
    nulls = orjson.dumps({**dict.fromkeys(PERSONAL_FIELDS), ERASED_AT: erased_at}).decode()
    await conn.execute(
        """
        UPDATE entities e SET state = coalesce(e.state, '{}'::jsonb) || $5::jsonb,
               updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             AS u(kind, source, tenant, source_id)
        WHERE (e.kind, e.source, e.tenant, e.source_id)
            = (u.kind, u.source, u.tenant, u.source_id)
        """,
        [k.kind for k in keys],
        [k.source for k in keys],
        [k.tenant for k in keys],
        [k.source_id for k in keys],
        nulls,
    )


async def drop_lead_keys(conn: asyncpg.Connection, lead_ids: Sequence[UUID]) -> None:
    await conn.execute("DELETE FROM lead_keys WHERE lead_id = ANY($1::uuid[])", list(lead_ids))


async def deliveries_naming(
    conn: asyncpg.Connection, source_ids: Sequence[str]
) -> list[tuple[int, bytes]]:
    """Archived deliveries whose body holds one of ``source_ids`` (a scan of the archive, which
    its retention bounds), to be read and redacted. One that the processor holds is skipped:
    it locked it before the records it names, and waiting for it while holding the lead's
    records could deadlock. It is applied after the erasure, as a later CRM change would be,
    and erasing again scrubs it."""
    rows = await conn.fetch(
        """
        SELECT id, body FROM deliveries
        WHERE EXISTS (SELECT 1 FROM unnest($1::bytea[]) AS s(id) WHERE position(s.id IN body) > 0)
        ORDER BY id
        FOR UPDATE SKIP LOCKED
        """,
        [s.encode() for s in source_ids],
    )
    return [(r["id"], bytes(r["body"])) for r in rows]


async def dead_letters_naming(
    conn: asyncpg.Connection, source_ids: Sequence[str]
) -> list[tuple[int, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, item FROM dead_letters
        WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) AS s(id)
                      WHERE strpos(item::text, s.id) > 0)
        ORDER BY id
        FOR UPDATE SKIP LOCKED
        """,
        list(source_ids),
    )
    return [(r["id"], loads_json(r["item"])) for r in rows]


async def outbox_rows_of(
    conn: asyncpg.Connection, lead_ids: Sequence[UUID]
) -> list[tuple[int, bytes]]:
    """Outbox rows, sent or not, of events keyed by one of ``lead_ids`` (a lead's own events)."""
    rows = await conn.fetch(
        "SELECT id, payload FROM outbox WHERE key = ANY($1::bytea[]) ORDER BY id FOR UPDATE",
        [str(i).encode() for i in lead_ids],
    )
    return [(r["id"], bytes(r["payload"])) for r in rows]


# What a redaction rewrites: each table's document column, and its type in the statement.
_REDACTED = {"deliveries": ("body", "bytea"), "dead_letters": ("item", "jsonb"),
             "outbox": ("payload", "bytea")}  # fmt: skip


async def save_redacted(
    conn: asyncpg.Connection, table: str, rows: Sequence[tuple[int, bytes]]
) -> None:
    """Store redacted documents (id, new value as bytes; JSON for ``dead_letters``)."""
    if rows:
        column, kind = _REDACTED[table]
        values = [v.decode() for _, v in rows] if kind == "jsonb" else [v for _, v in rows]
        cast = "text" if kind == "jsonb" else kind
        await conn.execute(
            f"UPDATE {table} t SET {column} = u.value::{kind} "
            f"FROM unnest($1::bigint[], $2::{cast}[]) AS u(id, value) WHERE t.id = u.id",
            [i for i, _ in rows],
            values,
        )
