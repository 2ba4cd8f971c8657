"""Synchronous ways in: REST events and records read from a CRM, applied in the caller's
transaction through the same pipeline as webhooks, and archived as ``records`` deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import orjson

from salesops_common.http import ApiError
from salesops_ingest.adapters import deliveries as store
from salesops_ingest.adapters.deliveries import Delivery
from salesops_ingest.domain.model import ValidEvent
from salesops_ingest.domain.records import SourceRecord
from salesops_ingest.service_layer.pipeline import BatchResult
from salesops_ingest.service_layer.processor import (
    CANONICAL,
    FORMAT_HEADER,
    RECORDS_FORMAT,
    Prepared,
    Processor,
    prepare_records,
    record_to_json,
)


@dataclass(frozen=True)
class EventResult:
    event_id: UUID
    entity_id: UUID
    status: str  # accepted | duplicate | unchanged | merged

    def as_json(self) -> dict[str, str]:
        return {
            "event_id": str(self.event_id),
            "entity_id": str(self.entity_id),
            "status": self.status,
        }


def _action(type_name: str) -> str:
    verb = type_name.split(".", 1)[1]
    if verb in ("created", "logged"):
        return "create"
    if verb == "deleted":
        return "delete"
    return "update"


def event_record(valid: ValidEvent) -> SourceRecord:
    ev = valid.event
    fields = valid.data.model_dump(exclude_unset=True, mode="json")
    source_id = str(fields.pop("source_id"))
    return SourceRecord(
        source=ev.source,
        tenant=ev.tenant,
        object_type=ev.entity,
        source_id=source_id,
        action=_action(ev.type),  # type: ignore[arg-type]
        occurred_at=ev.occurred_at,
        delivery_key=f"event:{ev.source_event_id}",
        properties=fields,
        origin="salesops-api",
    )


async def apply_records(
    conn: asyncpg.Connection,
    processor: Processor,
    records: Sequence[SourceRecord],
    *,
    mapping: str,
    source: str,
    forced: Sequence[tuple[str | None, UUID | None]] | None = None,
    dead_letters: bool = True,
    coerced: bool = False,
) -> tuple[BatchResult, Prepared]:
    """Archive ``records`` as one processed delivery and apply them; returns the result
    (outcomes aligned with ``prepared.changes``) and what was prepared, with the records
    that could not be mapped in ``prepared.dead`` (dead-lettered unless told otherwise)."""
    extras = {
        r.delivery_key: f for r, f in zip(records, forced or [], strict=False) if f[0] or f[1]
    }
    body = orjson.dumps(
        [
            record_to_json(r, mapping=mapping, forced_type=f[0], event_id=f[1])
            for r, f in zip(records, forced or [(None, None)] * len(records), strict=True)
        ]
    )
    headers = {FORMAT_HEADER: RECORDS_FORMAT}
    delivery_id = await store.insert_processed(conn, source, headers, body, len(records))
    delivery = Delivery(delivery_id, source, datetime.now(UTC), headers, body)
    prepared = prepare_records(
        records, processor.mappings, mapping_name=lambda _: mapping, extras=extras, coerced=coerced
    )
    applied = prepared if dead_letters else Prepared(changes=prepared.changes)
    result = await processor.apply(conn, [delivery], prepared=[applied])
    return result, prepared


async def accept_events(
    conn: asyncpg.Connection, processor: Processor, events: Sequence[ValidEvent]
) -> list[EventResult]:
    """Apply validated REST events; results in request order."""
    records = [event_record(v) for v in events]
    forced = [(v.event.type, v.event_id) for v in events]
    result, prepared = await apply_records(
        conn, processor, records, mapping=CANONICAL, source="api", forced=forced, coerced=True
    )
    if prepared.dead:
        reasons = "; ".join(reason for _, reason, _ in prepared.dead[:5])
        raise ApiError(422, f"events cannot be stored: {reasons}")
    out = []
    for valid, outcome in zip(events, result.outcomes, strict=True):
        event_id = outcome.event_ids[0] if outcome.event_ids else valid.event_id
        assert outcome.entity_id is not None
        out.append(EventResult(event_id, outcome.entity_id, outcome.status))
    return out
