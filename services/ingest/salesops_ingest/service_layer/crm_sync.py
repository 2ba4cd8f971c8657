"""Reading from and writing to the CRMs' APIs: full-record fetches, reconciliation pulls,
HubSpot owners, and the owner write-back.

Every job lives in a table (``fetch_jobs``, ``sync_cursors``, ``writebacks``) and is leased
before the API is called, so a crash repeats at most the call in flight, and every result is
applied through the pipeline (archived as a ``records`` delivery) in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from salesops_ingest.adapters import state as repo
from salesops_ingest.domain.records import CrmApi, CrmApiError, SourceRecord
from salesops_ingest.service_layer.accept import apply_records
from salesops_ingest.service_layer.processor import Processor

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
MAX_FETCH_ATTEMPTS = 8
MAX_WRITEBACK_ATTEMPTS = 8
SYNC_LOCK_ID = 0x5A1E5_0001
OWNER_FIELD = {"hubspot": "hubspot_owner_id", "salesforce": "OwnerId", "pipedrive": "owner_id"}


def full(records: Sequence[SourceRecord]) -> list[SourceRecord]:
    """Records read in full from a CRM's API: one ingest does not know yet is a creation."""
    return [replace(r, action="create") if r.action == "update" else r for r in records]


def backoff(attempts: int, base: float) -> float:
    return float(min(base * 2 ** max(attempts - 1, 0), 3600.0))


@dataclass
class CrmWorkers:
    dsn: str
    processor: Processor
    apis: Mapping[str, CrmApi]
    retry_base: float = 0.5
    observe_writeback: Any = None  # callable(source, result) for metrics
    # Accounts to pull per source; a source not named pulls the tenants seen so far.
    tenants: Mapping[str, Sequence[str]] = field(default_factory=dict)

    # -- fetches ------------------------------------------------------------------------

    async def run_fetches(self) -> None:
        await self._loop(self.fetch_once)

    async def fetch_once(self, conn: asyncpg.Connection) -> int:
        jobs = await conn.fetch(
            """
            UPDATE fetch_jobs SET due_at = now() + make_interval(secs => $1),
                   attempts = attempts + 1
            WHERE (source, tenant, object_type, source_id) IN (
                SELECT source, tenant, object_type, source_id FROM fetch_jobs
                WHERE due_at <= now() AND source = ANY($2::text[])
                ORDER BY due_at LIMIT 20 FOR UPDATE SKIP LOCKED)
            RETURNING source, tenant, object_type, source_id, attempts
            """,
            LEASE_SECONDS,
            list(self.apis),
        )
        if not jobs:
            return 0
        results = await asyncio.gather(*(self._fetch(j) for j in jobs), return_exceptions=True)
        for job, result in zip(jobs, results, strict=True):
            key = (job["source"], job["tenant"], job["object_type"], job["source_id"])
            if isinstance(result, BaseException):
                await self._fetch_failed(conn, job, result)
                continue
            async with conn.transaction():
                if result:
                    await apply_records(
                        conn, self.processor, result, mapping=job["source"], source=job["source"]
                    )
                await conn.execute(
                    "DELETE FROM fetch_jobs WHERE source = $1 AND tenant = $2 "
                    "AND object_type = $3 AND source_id = $4",
                    *key,
                )
        return len(jobs)

    async def _fetch(self, job: asyncpg.Record) -> list[SourceRecord]:
        api = self.apis[job["source"]]
        if job["object_type"] == "owner" and hasattr(api, "list_owners"):
            return full(await api.list_owners(job["tenant"]))
        record = await api.fetch(job["tenant"], job["object_type"], job["source_id"])
        return full([record]) if record is not None else []

    async def _fetch_failed(
        self, conn: asyncpg.Connection, job: asyncpg.Record, exc: BaseException
    ) -> None:
        retryable = getattr(exc, "retryable", True)
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        key = (job["source"], job["tenant"], job["object_type"], job["source_id"])
        if not retryable or job["attempts"] >= MAX_FETCH_ATTEMPTS:
            async with conn.transaction():
                await repo.record_dead_letters(
                    conn,
                    [
                        (
                            job["source"],
                            None,
                            f"fetch:{job['tenant']}:{job['object_type']}:{job['source_id']}",
                            f"reading the record from the CRM failed: {reason}",
                            dict(job),
                        )
                    ],
                )
                await conn.execute(
                    "DELETE FROM fetch_jobs WHERE source = $1 AND tenant = $2 "
                    "AND object_type = $3 AND source_id = $4",
                    *key,
                )
            return
        await conn.execute(
            "UPDATE fetch_jobs SET due_at = now() + make_interval(secs => $5), last_error = $6 "
            "WHERE source = $1 AND tenant = $2 AND object_type = $3 AND source_id = $4",
            *key,
            backoff(job["attempts"], self.retry_base),
            reason,
        )

    # -- reconciliation -----------------------------------------------------------------

    async def sync(
        self, conn: asyncpg.Connection, *, sources: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Pull what changed since each stored cursor; returns records read per source.
        Only one process syncs at a time (advisory lock); a concurrent call returns {}."""
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNC_LOCK_ID):
            return {}
        try:
            totals: dict[str, int] = {}
            for source, api in self.apis.items():
                if sources and source not in sources:
                    continue
                totals[source] = await self._sync_source(conn, source, api)
            return totals
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SYNC_LOCK_ID)

    async def _sync_source(self, conn: asyncpg.Connection, source: str, api: CrmApi) -> int:
        mapping = self.processor.mappings.by_source.get(source)
        if mapping is None:
            return 0
        tenants = await self._tenants(conn, source)
        total = 0
        for tenant in tenants:
            if source == "hubspot" and hasattr(api, "list_owners"):
                owners = full(await api.list_owners(tenant))
                async with conn.transaction():
                    await apply_records(conn, self.processor, owners, mapping=source, source=source)
                total += len(owners)
            for object_type in mapping.objects:
                if object_type == "owner":
                    continue
                total += await self._sync_object(conn, source, api, tenant, object_type)
        return total

    async def _sync_object(
        self, conn: asyncpg.Connection, source: str, api: CrmApi, tenant: str, object_type: str
    ) -> int:
        cursor = await conn.fetchval(
            "SELECT cursor FROM sync_cursors WHERE source = $1 AND tenant = $2 "
            "AND object_type = $3",
            source,
            tenant,
            object_type,
        )
        try:
            records, new_cursor = await api.list_changed(tenant, object_type, cursor)
            records = full(records)
        except CrmApiError as exc:
            await _save_cursor(conn, source, tenant, object_type, cursor, 0, str(exc)[:500])
            log.warning("sync %s %s %s failed: %s", source, tenant, object_type, exc)
            return 0
        async with conn.transaction():
            if records:
                await apply_records(conn, self.processor, records, mapping=source, source=source)
            await _save_cursor(
                conn, source, tenant, object_type, new_cursor or cursor, len(records), None
            )
        return len(records)

    async def _tenants(self, conn: asyncpg.Connection, source: str) -> list[str]:
        configured = self.tenants.get(source)
        if configured:
            return list(configured)
        rows = await conn.fetch("SELECT DISTINCT tenant FROM entities WHERE source = $1", source)
        return [r["tenant"] for r in rows]

    # -- owner write-back ---------------------------------------------------------------

    async def run_writebacks(self) -> None:
        await self._loop(self.writeback_once)

    async def writeback_once(self, conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            jobs = await conn.fetch(
                """
                UPDATE writebacks SET due_at = now() + make_interval(secs => $1),
                       attempts = attempts + 1, updated_at = now()
                WHERE event_id IN (
                    SELECT event_id FROM writebacks WHERE status = 'pending'
                      AND due_at <= now() AND source = ANY($2::text[])
                    ORDER BY due_at LIMIT 20 FOR UPDATE SKIP LOCKED)
                RETURNING event_id, lead_id, source, tenant, object_type, source_id,
                          owner_source_id, attempts, created_at
                """,
                LEASE_SECONDS,
                list(self.apis),
            )
            live = []
            for job in jobs:
                newer = await conn.fetchval(
                    "SELECT 1 FROM writebacks WHERE lead_id = $1 AND created_at > $2 "
                    "AND event_id <> $3 LIMIT 1",
                    job["lead_id"],
                    job["created_at"],
                    job["event_id"],
                )
                if newer:
                    await _finish(
                        conn, job["event_id"], "skipped", "superseded by a newer assignment"
                    )
                    self._observe(job["source"], "skipped")
                    continue
                # Known before the call, so the CRM's echo of this change is recognized even
                # if it arrives before the call returns.
                await expect_owner(conn, dict(job))
                live.append(job)
        if not live:
            return len(jobs)
        results = await asyncio.gather(*(self._write(j) for j in live), return_exceptions=True)
        for job, result in zip(live, results, strict=True):
            if result is None:
                await _finish(conn, job["event_id"], "done", None)
                self._observe(job["source"], "done")
                continue
            retryable = getattr(result, "retryable", True)
            detail = f"{type(result).__name__}: {result}"[:1000]
            if not retryable or job["attempts"] >= MAX_WRITEBACK_ATTEMPTS:
                await _finish(conn, job["event_id"], "failed", detail)
                self._observe(job["source"], "failed")
            else:
                await conn.execute(
                    "UPDATE writebacks SET due_at = now() + make_interval(secs => $2), "
                    "detail = $3, updated_at = now() WHERE event_id = $1",
                    job["event_id"],
                    backoff(job["attempts"], self.retry_base),
                    detail,
                )
                self._observe(job["source"], "retried")
        return len(jobs)

    async def _write(self, job: asyncpg.Record) -> None:
        api = self.apis[job["source"]]
        await api.set_owner(
            job["tenant"], job["object_type"], job["source_id"], job["owner_source_id"]
        )

    def _observe(self, source: str, result: str) -> None:
        if self.observe_writeback is not None:
            self.observe_writeback(source, result)

    async def _loop(self, once: Any) -> None:
        delay = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                delay = 0.2
                while True:
                    worked = await once(conn)
                    if not worked:
                        await asyncio.sleep(0.25)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - outlive database outages
                log.warning("CRM worker error: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if conn is not None:
                    conn.terminate()


async def _finish(
    conn: asyncpg.Connection, event_id: UUID, status: str, detail: str | None
) -> None:
    await conn.execute(
        "UPDATE writebacks SET status = $2, detail = $3, updated_at = now() WHERE event_id = $1",
        event_id,
        status,
        detail,
    )


async def _save_cursor(
    conn: asyncpg.Connection,
    source: str,
    tenant: str,
    object_type: str,
    cursor: str | None,
    records: int,
    error: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO sync_cursors (source, tenant, object_type, cursor, synced_at, records,
                                  last_error)
        VALUES ($1, $2, $3, $4, now(), $5, $6)
        ON CONFLICT (source, tenant, object_type) DO UPDATE
            SET cursor = EXCLUDED.cursor, synced_at = now(),
                records = sync_cursors.records + EXCLUDED.records, last_error = EXCLUDED.last_error
        """,
        source,
        tenant,
        object_type,
        cursor,
        records,
        error,
    )


async def expect_owner(conn: asyncpg.Connection, job: Mapping[str, Any]) -> None:
    """Record the owner ingest is about to write as the record's known owner (stamped now),
    so that the CRM reporting the change back changes nothing and publishes nothing."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    await conn.execute(
        """
        UPDATE entities
        SET state = coalesce(state, '{}'::jsonb) || jsonb_build_object(
                'owner_source_id', $5::text, '_writeback_owner', $5::text),
            stamps = coalesce(stamps, '{}'::jsonb) || jsonb_build_object(
                'owner_source_id', $6::bigint)
        WHERE kind = 'lead' AND source = $1 AND tenant = $2 AND source_id = $3
          AND id = $4
        """,
        job["source"],
        job["tenant"],
        job["source_id"],
        job["lead_id"],
        job["owner_source_id"],
        now_ms,
    )


@dataclass(frozen=True)
class Assigned:
    """One assignment to write back: its event, the lead and the rep (None: fallback)."""

    event_id: UUID
    lead_id: UUID
    rep_id: UUID | None


async def plan_writebacks(
    conn: asyncpg.Connection,
    assignments: Sequence[Assigned],
    *,
    apis: Mapping[str, CrmApi],
    object_types: Mapping[str, str],
) -> list[tuple[str, str]]:
    """Record the write-backs a batch of assignments needs (idempotent by event id), in at
    most three statements whatever the batch's size (one round trip per assignment made the
    write-back consumer the slowest to drain on a busy machine); returns (source, status)
    pairs for metrics."""
    leads = {
        row["id"]: row
        for row in await conn.fetch(
            "SELECT DISTINCT ON (id) id, source, tenant, source_id, object_type FROM entities "
            "WHERE id = ANY($1::uuid[]) AND kind = 'lead' AND status = 'live' "
            "ORDER BY id, source, tenant",
            list({a.lead_id for a in assignments}),
        )
    }
    # Owners are looked up only for leads a CRM API can be written to (REST leads never).
    reps = {
        a.rep_id
        for a in assignments
        if a.rep_id is not None
        and (lead := leads.get(a.lead_id)) is not None
        and lead["source"] in OWNER_FIELD
        and lead["source"] in apis
    }
    owners = (
        {
            (row["id"], row["source"], row["tenant"]): row["source_id"]
            for row in await conn.fetch(
                "SELECT DISTINCT ON (id, source, tenant) id, source, tenant, source_id "
                "FROM entities WHERE id = ANY($1::uuid[]) AND kind = 'rep'",
                list(reps),
            )
        }
        if reps
        else {}
    )
    rows: list[tuple[Any, ...]] = []
    for a in assignments:
        lead = leads.get(a.lead_id)
        if lead is None:
            continue
        source, tenant = lead["source"], lead["tenant"]
        status, detail, owner = "pending", None, None
        if source not in OWNER_FIELD:
            status, detail = "skipped", f"the lead came from {source}: no CRM to write to"
        elif source not in apis:
            status, detail = "skipped", f"no {source} API configured"
        elif a.rep_id is None:
            status, detail = "skipped", "the lead went to the fallback queue"
        else:
            owner = owners.get((a.rep_id, source, tenant))
            if owner is None:
                status, detail = "skipped", f"the rep has no {source} user in this account"
        object_type = lead["object_type"] or object_types.get(source, "lead")
        rows.append(
            (a.event_id, a.lead_id, a.rep_id, source, tenant, object_type)
            + (lead["source_id"], owner, status, detail)
        )
    if not rows:
        return []
    inserted = await conn.fetch(
        """
        INSERT INTO writebacks (event_id, lead_id, rep_id, source, tenant, object_type,
                                source_id, owner_source_id, status, detail)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
        ON CONFLICT (event_id) DO NOTHING RETURNING source, status
        """,
        *(list(column) for column in zip(*rows, strict=True)),
    )
    return [(row["source"], row["status"]) for row in inserted]
