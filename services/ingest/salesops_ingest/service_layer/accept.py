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
from salesops_ingest.service_layer.pipeline import BatchResult, Change
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


def _prepare(
    processor: Processor,
    records: Sequence[SourceRecord],
    forced: Sequence[tuple[str | None, UUID | None]] | None,
    *,
    mapping: str,
    coerced: bool,
) -> Prepared:
    """Map and normalize ``records`` with ``mapping`` and the types and ids clients forced."""
    return prepare_records(
        records,
        processor.mappings,
        mapping_name=lambda _: mapping,
        extras={
            r.delivery_key: f for r, f in zip(records, forced or [], strict=False) if f[0] or f[1]
        },
        coerced=coerced,
    )


def _archived(
    records: Sequence[SourceRecord],
    forced: Sequence[tuple[str | None, UUID | None]] | None,
    *,
    mapping: str,
) -> tuple[dict[str, str], bytes]:
    """``records`` as one ``records`` delivery: its headers and body."""
    body = orjson.dumps(
        [
            record_to_json(r, mapping=mapping, forced_type=f[0], event_id=f[1])
            for r, f in zip(records, forced or [(None, None)] * len(records), strict=True)
        ]
    )
    return {FORMAT_HEADER: RECORDS_FORMAT}, body


async def _archive(
    conn: asyncpg.Connection,
    records: Sequence[SourceRecord],
    forced: Sequence[tuple[str | None, UUID | None]] | None,
    *,
    mapping: str,
    source: str,
) -> Delivery:
    """``records`` stored as one delivery processed in the caller's transaction."""
    headers, body = _archived(records, forced, mapping=mapping)
    delivery_id = await store.insert_processed(conn, source, headers, body, len(records))
    return Delivery(delivery_id, source, datetime.now(UTC), headers, body)


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
    delivery = await _archive(conn, records, forced, mapping=mapping, source=source)
    prepared = _prepare(processor, records, forced, mapping=mapping, coerced=coerced)
    applied = prepared if dead_letters else Prepared(changes=prepared.changes)
    result = await processor.apply(conn, [delivery], prepared=[applied])
    return result, prepared


@dataclass(frozen=True)
class PreparedEvents:
    """One request's validated events, mapped and normalized: everything but the database
    work, so that bad input is refused before the request joins a transaction."""

    events: Sequence[ValidEvent]
    records: list[SourceRecord]
    forced: list[tuple[str | None, UUID | None]]
    changes: list[Change]


def prepare_events(processor: Processor, events: Sequence[ValidEvent]) -> PreparedEvents:
    """Raises ApiError (422) when an event cannot be stored."""
    records = [event_record(v) for v in events]
    forced: list[tuple[str | None, UUID | None]] = [(v.event.type, v.event_id) for v in events]
    prepared = _prepare(processor, records, forced, mapping=CANONICAL, coerced=True)
    if prepared.dead:
        reasons = "; ".join(reason for _, reason, _ in prepared.dead[:5])
        raise ApiError(422, f"events cannot be stored: {reasons}")
    return PreparedEvents(events, records, forced, prepared.changes)


async def apply_events(
    conn: asyncpg.Connection, processor: Processor, requests: Sequence[PreparedEvents]
) -> tuple[BatchResult, list[list[EventResult]]]:
    """Apply several requests' events in the caller's transaction, in order, archived as one
    delivery: each request's results in its own order, and the batch's result."""
    records = [r for req in requests for r in req.records]
    forced = [f for req in requests for f in req.forced]
    headers, body = _archived(records, forced, mapping=CANONICAL)
    # The archive goes with the transaction's last writes (nothing needs its id: REST
    # events are refused whole before, never dead-lettered): one round trip fewer.
    archive = store.processed_write("api", headers, body, len(records))
    changes = [c for req in requests for c in req.changes]
    result = await processor.apply_changes(conn, changes, also=[archive])
    outcomes = iter(result.outcomes)
    answers = []
    for req in requests:
        out = []
        for valid, outcome in zip(req.events, outcomes, strict=False):
            event_id = outcome.event_ids[0] if outcome.event_ids else valid.event_id
            assert outcome.entity_id is not None
            out.append(EventResult(event_id, outcome.entity_id, outcome.status))
        answers.append(out)
    return result, answers
