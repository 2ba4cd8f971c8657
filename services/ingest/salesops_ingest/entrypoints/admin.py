"""Operating ingest over REST (API token): dead letters, replays, reconciliation syncs,
owner write-backs, delivery status and data quality."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from salesops_common.http import ApiError
from salesops_ingest.adapters import deliveries as store
from salesops_ingest.adapters.state import loads_json
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.crm_sync import CrmWorkers

Status = Literal["open", "resolved"]
MAX_ID = 2**63 - 1
LetterId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _in_range(value: datetime | None) -> datetime | None:
    try:
        return value.astimezone(UTC) if value is not None else None
    except OverflowError:
        raise ValueError("date out of range") from None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime
    until: AwareDatetime | None = None
    source: Literal["api", "csv", "hubspot", "salesforce", "pipedrive"] | None = None

    _range = field_validator("since", "until")(_in_range)


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Literal["hubspot", "salesforce", "pipedrive"]] | None = None


def _letter(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "source": row["source"],
        "delivery_id": row["delivery_id"],
        "item_key": row["item_key"],
        "reason": row["reason"],
        "item": loads_json(row["item"]),
        "status": row["status"],
        "attempts": row["attempts"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def build_router(ctx: IngestContext, workers: CrmWorkers) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["operations"], dependencies=[Depends(ctx.require_token)])

    @router.get("/dead-letters")
    async def list_dead_letters(
        status: Status = "open",
        source: Annotated[
            str | None, Query(pattern="^(api|csv|hubspot|salesforce|pipedrive)$")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> dict[str, Any]:
        """Items that could not be mapped or processed, with the reason; oldest first."""
        async with ctx.raw() as conn:
            rows = await conn.fetch(
                "SELECT * FROM dead_letters WHERE status = $1 AND ($2::text IS NULL OR "
                "source = $2) AND id > $3 ORDER BY id LIMIT $4",
                status,
                source,
                after_id,
                limit,
            )
            total = await conn.fetchval(
                "SELECT count(*) FROM dead_letters WHERE status = $1 AND "
                "($2::text IS NULL OR source = $2)",
                status,
                source,
            )
        return {"total": total, "items": [_letter(r) for r in rows]}

    @router.get("/dead-letters/{letter_id}")
    async def get_dead_letter(letter_id: LetterId) -> dict[str, Any]:
        async with ctx.raw() as conn:
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)
        if row is None:
            raise ApiError(404, "no such dead letter")
        return _letter(row)

    @router.post("/dead-letters/{letter_id}/retry")
    async def retry_dead_letter(letter_id: LetterId) -> dict[str, Any]:
        """Process the item again (after a mapping fix): resolved if it now goes through."""
        async with ctx.raw() as conn:
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)
            if row is None:
                raise ApiError(404, "no such dead letter")
            await _retry(conn, [row])
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)
        return _letter(row)

    @router.post("/dead-letters/retry")
    async def retry_all_dead_letters(
        source: Annotated[
            str | None, Query(pattern="^(api|csv|hubspot|salesforce|pipedrive)$")
        ] = None,
    ) -> dict[str, int]:
        """Retry every open dead letter; returns how many were resolved and remain open."""
        async with ctx.raw() as conn:
            rows = await conn.fetch(
                "SELECT * FROM dead_letters WHERE status = 'open' AND "
                "($1::text IS NULL OR source = $1) ORDER BY id",
                source,
            )
            await _retry(conn, rows)
            still = await conn.fetchval(
                "SELECT count(*) FROM dead_letters "
                "WHERE status = 'open' AND id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        return {"retried": len(rows), "resolved": len(rows) - still, "open": still}

    async def _retry(conn: asyncpg.Connection, rows: list[Any]) -> None:
        by_delivery = sorted({r["delivery_id"] for r in rows if r["delivery_id"] is not None})
        for delivery_id in by_delivery:
            delivery = await store.get(conn, delivery_id)
            if delivery is None:
                continue
            async with conn.transaction():
                # Items that went through before are duplicates now; only the dead ones apply.
                result = await ctx.processor.apply(conn, [delivery])
            ctx.observe(result)
        for row in rows:
            if row["delivery_id"] is not None:
                continue
            item = loads_json(row["item"])
            if item and item.get("object_type") and item.get("source_id"):
                # A failed CRM read: queue the read again.
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO fetch_jobs (source, tenant, object_type, source_id) "
                        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        item["source"],
                        item["tenant"],
                        item["object_type"],
                        item["source_id"],
                    )
                    await conn.execute(
                        "UPDATE dead_letters SET status = 'resolved', updated_at = now() "
                        "WHERE id = $1",
                        row["id"],
                    )

    @router.post("/replays", status_code=202)
    async def replay(request: ReplayRequest) -> dict[str, Any]:
        """Re-normalize archived deliveries received in [since, until) (after a mapping
        fix). Replayed deliveries skip delivery dedupe; record state makes them publish
        only what actually changes, so nothing is duplicated."""
        async with ctx.raw() as conn:
            count = await store.schedule_replay(
                conn, since=request.since, until=request.until, source=request.source
            )
        return {"deliveries": count}

    @router.get("/deliveries/status")
    async def delivery_status() -> dict[str, Any]:
        """How far the processor is (pending deliveries and the oldest one's age), and the raw
        archive (every delivery kept, pending or processed, and the oldest one's reception:
        ``SALESOPS_INGEST_ARCHIVE_RETENTION_DAYS`` bounds it)."""
        async with ctx.raw() as conn:
            row = await conn.fetchrow(
                """
                SELECT count(*) FILTER (WHERE processed_at IS NULL) AS pending,
                       min(received_at) FILTER (WHERE processed_at IS NULL) AS oldest,
                       count(*) AS archived, min(received_at) AS oldest_archived
                FROM deliveries
                """
            )
            fetches = await conn.fetchval("SELECT count(*) FROM fetch_jobs")
        return {
            "pending": row["pending"],
            "oldest_pending": row["oldest"],
            "archived": row["archived"],
            "oldest_archived": row["oldest_archived"],
            "fetch_jobs": fetches,
        }

    @router.post("/syncs")
    async def run_sync(request: SyncRequest | None = None) -> dict[str, Any]:
        """Run the reconciliation pull now (each configured CRM API, from its stored
        cursors); returns records read per source. 409 while another sync runs."""
        if not workers.apis:
            raise ApiError(409, "no CRM API is configured", code="no_crm_api")
        async with ctx.raw() as conn:
            totals = await workers.sync(conn, sources=request.sources if request else None)
        if not totals:
            raise ApiError(409, "a sync is already running", code="sync_running")
        return {"records": totals}

    @router.get("/syncs")
    async def sync_status() -> dict[str, Any]:
        async with ctx.raw() as conn:
            rows = await conn.fetch(
                "SELECT * FROM sync_cursors ORDER BY source, tenant, object_type"
            )
        return {"cursors": [dict(r) for r in rows]}

    @router.get("/writebacks")
    async def list_writebacks(
        lead_id: str | None = None,
        status: Annotated[str | None, Query(pattern="^(pending|done|failed|skipped)$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Owner write-backs: what was written to which CRM record, and how it went."""
        async with ctx.raw() as conn:
            try:
                rows = await conn.fetch(
                    "SELECT * FROM writebacks WHERE ($1::uuid IS NULL OR lead_id = $1) AND "
                    "($2::text IS NULL OR status = $2) ORDER BY created_at DESC LIMIT $3",
                    lead_id,
                    status,
                    limit,
                )
            except asyncpg.DataError:
                raise ApiError(422, "lead_id must be a UUID") from None
        return {"items": [dict(r) for r in rows]}

    @router.get("/quality")
    async def quality() -> dict[str, Any]:
        """Data-quality tallies and rates by source."""
        async with ctx.raw() as conn:
            rows = await conn.fetch("SELECT source, metric, count FROM quality_counts")
        return {"sources": quality_rates(rows)}

    return router


def quality_rates(rows: list[Any]) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["source"], {})[r["metric"]] = int(r["count"])
    out: dict[str, dict[str, Any]] = {}
    for source, c in counts.items():
        created = sum(v for k, v in c.items() if k.endswith("s_created"))
        missing = sum(v for k, v in c.items() if k.endswith("s_missing_fields"))
        out[source] = {
            "counts": c,
            "duplicate_rate": _ratio(c.get("leads_duplicate", 0), c.get("leads_new", 0)),
            "invalid_email_rate": _ratio(c.get("invalid_email", 0), c.get("emails", 0)),
            "missing_field_rate": _ratio(missing, created),
        }
    return out


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
