"""Accepting events: dedupe, resolve ids, store the delivery and its outbox row, atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.kafka import Topics
from salesops_common.outbox import add_to_outbox
from salesops_ingest.adapters import repository
from salesops_ingest.domain.model import RecordKey, ValidEvent, canonical_envelope


@dataclass(frozen=True)
class EventResult:
    event_id: UUID
    entity_id: UUID
    status: str  # "accepted" or "duplicate"

    def as_json(self) -> dict[str, str]:
        return {
            "event_id": str(self.event_id),
            "entity_id": str(self.entity_id),
            "status": self.status,
        }


async def accept_events(
    session: AsyncSession, *, events: Sequence[ValidEvent], topics: Topics
) -> list[EventResult]:
    """Store every new event with its outbox row in the caller's transaction."""
    keys: set[RecordKey] = set()
    for valid in events:
        keys.update(valid.keys)
    ids = await repository.resolve_records(session, keys)
    subjects = [ids[v.subject] for v in events]
    new_ids = await repository.record_received(session, events, subjects)
    published: set[UUID] = set()
    envelopes = []
    results = []
    for valid, entity_id in zip(events, subjects, strict=True):
        event_id = valid.event_id
        fresh = event_id in new_ids and event_id not in published
        if fresh:
            published.add(event_id)
            envelopes.append(canonical_envelope(valid, ids))
        results.append(EventResult(event_id, entity_id, "accepted" if fresh else "duplicate"))
    await add_to_outbox(session, envelopes, topics=topics)
    return results
