"""SQL of what the models learn from beside deals: accounts (and their territory), leads,
activity per deal and lead, and routing's territory model."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_forecast.adapters.repository import (
    lock_record,
    lock_records,
    save_record,
    save_records,
)
from salesops_forecast.domain.pipeline import ACCOUNT_FIELDS, LEAD_FIELDS, VersionedRecord

_ACCOUNT_COLUMNS = (*ACCOUNT_FIELDS, "territory_id", "deleted")
_LEAD_COLUMNS = (*LEAD_FIELDS, "lifecycle", "merged_into")


async def lock_account(session: AsyncSession, account_id: UUID) -> VersionedRecord:
    return await lock_record(session, "accounts", "account_id", account_id, _ACCOUNT_COLUMNS)


async def save_account(session: AsyncSession, account_id: UUID, record: VersionedRecord) -> None:
    await save_record(
        session,
        "accounts",
        "account_id",
        account_id,
        record,
        _ACCOUNT_COLUMNS,
        {"deleted": False},
    )


async def lock_lead(session: AsyncSession, lead_id: UUID) -> VersionedRecord:
    return await lock_record(session, "leads", "lead_id", lead_id, _LEAD_COLUMNS)


async def save_lead(session: AsyncSession, lead_id: UUID, record: VersionedRecord) -> None:
    await save_record(
        session, "leads", "lead_id", lead_id, record, _LEAD_COLUMNS, {"lifecycle": "open"}
    )


async def lock_leads(
    session: AsyncSession, lead_ids: Collection[UUID]
) -> dict[UUID, VersionedRecord]:
    return await lock_records(session, "leads", "lead_id", lead_ids, _LEAD_COLUMNS)


async def save_leads(session: AsyncSession, records: Mapping[UUID, VersionedRecord]) -> None:
    await save_records(session, "leads", "lead_id", records, _LEAD_COLUMNS, {"lifecycle": "open"})


async def count_duplicate(session: AsyncSession, lead_id: UUID) -> None:
    """A duplicate merged into a lead: the person came in again."""
    await session.execute(
        text(
            "INSERT INTO leads (lead_id, duplicates) VALUES (:id, 1) "
            "ON CONFLICT (lead_id) DO UPDATE SET duplicates = leads.duplicates + 1"
        ),
        {"id": lead_id},
    )


async def record_activity(
    session: AsyncSession, *, kind: str, subject_id: UUID, at: datetime | None
) -> None:
    await session.execute(
        text(
            "INSERT INTO activity_stats (subject_kind, subject_id, activities, first_at, "
            "last_at) VALUES (:kind, :id, 1, :at, :at) "
            "ON CONFLICT (subject_kind, subject_id) DO UPDATE SET "
            "activities = activity_stats.activities + 1, "
            "first_at = LEAST(activity_stats.first_at, EXCLUDED.first_at), "
            "last_at = GREATEST(activity_stats.last_at, EXCLUDED.last_at)"
        ),
        {"kind": kind, "id": subject_id, "at": at},
    )


async def record_ruleset(
    session: AsyncSession, *, version: int, ruleset: Mapping[str, Any], at: datetime
) -> None:
    await session.execute(
        text(
            "INSERT INTO rulesets (version, ruleset, event_time) "
            "VALUES (:v, CAST(:r AS jsonb), :at) ON CONFLICT (version) DO NOTHING"
        ),
        {"v": version, "r": orjson.dumps(dict(ruleset)).decode(), "at": at},
    )


async def newest_ruleset(session: AsyncSession) -> Mapping[str, Any]:
    rows = await session.execute(text("SELECT ruleset FROM rulesets ORDER BY version DESC LIMIT 1"))
    found: Mapping[str, Any] | None = rows.scalar_one_or_none()
    return found or {}
