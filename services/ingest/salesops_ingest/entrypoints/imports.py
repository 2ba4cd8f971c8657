"""``POST /v1/imports``: CSV back-fills and migrations, streamed, with a per-row report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from salesops_common.http import ApiError
from salesops_ingest.connectors.csv_import import CsvFormatError, CsvImport, RowError
from salesops_ingest.domain.records import SourceRecord
from salesops_ingest.service_layer.accept import apply_records
from salesops_ingest.service_layer.context import IngestContext

BATCH_ROWS = 500
MAX_REPORTED_ERRORS = 1000

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def build_router(ctx: IngestContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(ctx.require_token)])

    @router.post("/imports", openapi_extra=_BODY)
    async def post_import(
        request: Request,
        kind: Annotated[str, Query(pattern="^(lead|account|deal|activity)$")],
        tenant: Annotated[str, Query(min_length=1, max_length=128)] = "default",
    ) -> dict[str, Any]:
        """Import a CSV of leads, accounts, deals or activities: one record per row, the
        header naming canonical fields (or their aliases) and an id column (``source_id``,
        ``id``, ``external id``...). Streamed with no total size limit; rows are committed in
        batches of 500 through the same hygiene as webhooks (normalized, merged when
        duplicate, unchanged rows publish nothing), so importing a file again is harmless.
        A row that cannot be used (no id, over 64 KiB, a value of the wrong type) is reported
        with its number and changes nothing."""
        import_id = uuid.uuid4().hex
        rows = CsvImport(
            request.stream(),
            kind=kind,
            tenant=tenant,
            import_id=import_id,
            received_at=datetime.now(UTC),
        )
        try:
            await rows.read_header()
        except CsvFormatError as exc:
            raise ApiError(422, str(exc), code="invalid_csv") from None
        totals = {"accepted": 0, "unchanged": 0, "merged": 0, "duplicate": 0, "queued": 0}
        errors: list[dict[str, Any]] = []
        error_count = 0
        batch: list[SourceRecord] = []

        async def flush() -> None:
            nonlocal error_count
            if not batch:
                return
            async with ctx.raw() as conn, conn.transaction():
                result, prepared = await apply_records(
                    conn, ctx.processor, batch, mapping="csv", source="csv", dead_letters=False
                )
            ctx.observe(result)
            for outcome in result.outcomes:
                key = outcome.status if outcome.status in totals else "unchanged"
                totals[key] += 1
            ctx.observe_outcomes("csv", [o.status for o in result.outcomes])
            for item_key, reason, item in prepared.dead:
                error_count += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    row = int(item_key.rsplit(":", 1)[-1]) if ":" in item_key else None
                    source_id = item.get("source_id") if isinstance(item, dict) else None
                    errors.append({"row": row, "error": reason, "source_id": source_id})
            batch.clear()

        async for item in rows:
            if isinstance(item, RowError):
                error_count += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(
                        {"row": item.row, "error": item.error, "source_id": item.source_id}
                    )
                continue
            batch.append(item)
            if len(batch) >= BATCH_ROWS:
                await flush()
        await flush()
        errors.sort(key=lambda e: e["row"] or 0)
        return {
            "import_id": import_id,
            "kind": kind,
            "rows": rows.rows,
            **totals,
            "error_count": error_count,
            "errors": errors,
            "columns": rows.columns,
            "ignored_columns": rows.ignored_columns,
        }

    return router
