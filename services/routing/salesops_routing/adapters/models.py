"""Routing's SQL for ruleset versions and the accounts leads are matched to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import first_row

# --- rulesets ---------------------------------------------------------------------------


async def current_version(session: AsyncSession) -> int:
    row = await session.execute(text("SELECT coalesce(max(version), 0) FROM rulesets"))
    version: int = row.scalar_one()
    return version


async def newest(session: AsyncSession) -> tuple[int, str]:
    row = await session.execute(
        text("SELECT version, digest FROM rulesets ORDER BY version DESC LIMIT 1")
    )
    found = row.first()
    return (found.version, found.digest) if found else (0, "")


async def load_version(session: AsyncSession, version: int) -> dict[str, Any] | None:
    row = await session.execute(
        text("SELECT version, body, digest, comment, created_at FROM rulesets WHERE version = :v"),
        {"v": version},
    )
    return first_row(row)


async def list_versions(session: AsyncSession, *, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT version, digest, comment, created_at FROM rulesets "
            "ORDER BY version DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [dict(r._mapping) for r in rows]


async def lock_versions(session: AsyncSession) -> None:
    """One ruleset change at a time, across every copy of the service."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('routing.rulesets'))"))


async def add_version(
    session: AsyncSession,
    *,
    version: int,
    body: Mapping[str, Any],
    digest: str,
    comment: str | None,
) -> None:
    await session.execute(
        text(
            "INSERT INTO rulesets (version, body, digest, comment) "
            "VALUES (:v, CAST(:body AS jsonb), :digest, :comment)"
        ),
        {"v": version, "body": orjson.dumps(body).decode(), "digest": digest, "comment": comment},
    )


# --- accounts ---------------------------------------------------------------------------


async def save_account(
    session: AsyncSession,
    account_id: UUID,
    *,
    columns: Mapping[str, Any],
    attributes: Mapping[str, Any],
) -> None:
    """Insert an account or merge what an event states into it."""
    allowed = [c for c in ("name", "name_norm", "name_key", "domain", "owner_id") if c in columns]
    names = ", ".join(["id", "attributes", *allowed])
    values = ", ".join([":id", "CAST(:attributes AS jsonb)", *(f":{c}" for c in allowed)])
    merged = ", ".join(
        [
            "attributes = accounts.attributes || EXCLUDED.attributes",
            *(f"{c} = EXCLUDED.{c}" for c in allowed),
            "deleted = false",
            "updated_at = now()",
        ]
    )
    await session.execute(
        text(
            f"INSERT INTO accounts ({names}) VALUES ({values}) "
            f"ON CONFLICT (id) DO UPDATE SET {merged}"
        ),
        {
            "id": account_id,
            "attributes": orjson.dumps(dict(attributes)).decode(),
            **{c: columns[c] for c in allowed},
        },
    )


async def delete_account(session: AsyncSession, account_id: UUID) -> None:
    await session.execute(
        text("UPDATE accounts SET deleted = true, updated_at = now() WHERE id = :id"),
        {"id": account_id},
    )


async def find_account(session: AsyncSession, account_id: UUID) -> dict[str, Any] | None:
    row = await session.execute(
        text(
            "SELECT id, name, domain, owner_id, attributes, territory_id, ruleset_version "
            "FROM accounts WHERE id = :id AND NOT deleted"
        ),
        {"id": account_id},
    )
    return first_row(row)


async def account_territories(session: AsyncSession, ids: list[UUID]) -> dict[UUID, str | None]:
    rows = await session.execute(
        text("SELECT id, territory_id FROM accounts WHERE id = ANY(:ids)"), {"ids": ids}
    )
    return {r.id: r.territory_id for r in rows}


async def accounts_to_place(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT id, domain, attributes, territory_id FROM accounts WHERE NOT deleted "
            "ORDER BY id"
        )
    )
    return [dict(r._mapping) for r in rows]


async def place_accounts(
    session: AsyncSession, moves: Sequence[tuple[UUID, str | None]], *, version: int
) -> None:
    """Store (account id, territory) placements under ``version``, in one statement."""
    if not moves:
        return
    await session.execute(
        text(
            "UPDATE accounts a SET territory_id = x.territory, ruleset_version = :v, "
            "updated_at = now() "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:territories AS text[])) "
            "AS x(id, territory) WHERE a.id = x.id"
        ),
        {"ids": [m[0] for m in moves], "territories": [m[1] for m in moves], "v": version},
    )
