"""Erasing a person (``DELETE /v1/leads/{id}``, a CRM's privacy deletion): ingest scrubs its
own copy and stages ``lead.erased`` in the caller's transaction.

What is scrubbed: the personal fields of every record of the lead (its own and the duplicates
merged into it) are nulled, its duplicate-matching keys dropped (it can no longer be matched),
and the values redacted in the stored documents that name it: archived deliveries (JSON or
Salesforce's SOAP; only the items naming one of the lead's source ids), dead letters, and the
outbox rows of its own events. The lead's ids, status, owner and every non-personal field
stay: an erased lead still counts.

A redacted archived delivery no longer matches the signature it arrived with; it was checked
at intake, and a replay does not check it again. A replay of it applies nulls where the person's
values were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from xml.etree.ElementTree import Element, ParseError, tostring

import asyncpg
import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from salesops_common.envelope import Envelope, name_uuid
from salesops_common.erasure import PersonalValues, nulled, redact, redact_items
from salesops_ingest.adapters import erasure as repo
from salesops_ingest.adapters.repository import proposed_id
from salesops_ingest.domain.model import RecordKey

_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
ERASURE_NAMESPACE = UUID("8a3f1c52-6d0e-4b7a-9c21-5e4d3b2a1f09")


def erasure_event_id(lead_id: UUID) -> UUID:
    """One id per erased lead, whichever way the erasure came: a second erasure (or the same
    one by DELETE and by the CRM) is one event to the consumers' inboxes."""
    return name_uuid(ERASURE_NAMESPACE, f"lead.erased/{lead_id}")


@dataclass(frozen=True)
class Erasure:
    lead_id: UUID
    status: str  # erased | already_erased
    envelopes: list[Envelope]


async def erase_lead(
    conn: asyncpg.Connection, lead_id: UUID, *, at: datetime | None = None
) -> Erasure | None:
    """Scrub the lead in the caller's transaction; returns the ``lead.erased`` events to stage
    (one per lead id the lead had: its own and its merged duplicates'), or None for a lead
    ingest does not know. Erasing again scrubs again (a CRM update may have brought values
    back) but announces nothing new."""
    records = await repo.lock_lead_records(conn, lead_id)
    if not records:
        return None
    already = all(repo.ERASED_AT in state for _, _, state in records)
    moment = at or datetime.now(UTC)
    keys = [key for key, _, _ in records]
    own_ids = sorted({lead_id, *(proposed_id(k) for k in keys)})
    await repo.null_personal_fields(conn, keys, moment.isoformat())
    await repo.drop_lead_keys(conn, own_ids)
    await _redact_documents(conn, [state for _, _, state in records], keys, own_ids)
    if already:
        return Erasure(lead_id, "already_erased", [])
    primary = next((k for k, status, _ in records if status != "merged"), keys[0])
    envelopes = [_erased(i, primary if i == lead_id else _key_of(i, keys), moment) for i in own_ids]
    return Erasure(lead_id, "erased", envelopes)


def _key_of(own_id: UUID, keys: Sequence[RecordKey]) -> RecordKey:
    return next(k for k in keys if proposed_id(k) == own_id)


def _erased(lead_id: UUID, key: RecordKey, moment: datetime) -> Envelope:
    data = {
        "schema_version": 1,
        "id": str(lead_id),
        "source": key.source,
        "tenant": key.tenant,
        "source_id": key.source_id,
        "erased_at": moment.isoformat(),
    }
    return Envelope(
        type="lead.erased",
        source=f"/ingest/{key.source}/{key.tenant}",
        subject=str(lead_id),
        key=str(lead_id),
        data=data,
        id=erasure_event_id(lead_id),
        time=moment,
    )


async def _redact_documents(
    conn: asyncpg.Connection,
    states: Sequence[dict[str, Any]],
    keys: Sequence[RecordKey],
    lead_ids: Sequence[UUID],
) -> None:
    """The values to look for are the lead's as its records hold them and as its events in
    the outbox carried them (values it had before an update)."""
    events = []
    for row_id, payload in await repo.outbox_rows_of(conn, lead_ids):
        data = orjson.loads(payload)
        if isinstance(data, dict):
            events.append((row_id, data))
    values = PersonalValues.of([*states, *(data for _, data in events)])
    source_ids = sorted({k.source_id for k in keys})
    ids = frozenset(source_ids)
    if values:
        bodies = []
        for delivery_id, body in await repo.deliveries_naming(conn, source_ids):
            redacted = redact_body(body, values, ids)
            if redacted is not None:
                bodies.append((delivery_id, redacted))
        await repo.save_redacted(conn, "deliveries", bodies)
        items = []
        for letter_id, item in await repo.dead_letters_naming(conn, source_ids):
            new, changed = redact_items(item, values, ids)
            if changed:
                items.append((letter_id, orjson.dumps(new)))
        await repo.save_redacted(conn, "dead_letters", items)
    payloads = []
    for row_id, data in events:
        new_data, _ = redact(nulled(data), values)
        if new_data != data:
            payloads.append((row_id, orjson.dumps(new_data)))
    await repo.save_redacted(conn, "outbox", payloads)


def redact_body(body: bytes, values: PersonalValues, ids: frozenset[str]) -> bytes | None:
    """An archived body with ``values`` redacted in the items naming one of ``ids`` (JSON, or
    XML: Salesforce's outbound messages); None when nothing changed or it is neither."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _redact_xml(body, values, ids)
    new, changed = redact_items(document, values, ids)
    return orjson.dumps(new) if changed else None


def _redact_xml(body: bytes, values: PersonalValues, ids: frozenset[str]) -> bytes | None:
    try:
        root: Element = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError):
        return None
    changed = False
    for record in root.iter():
        # An element one of whose children is the record's id (a Salesforce sObject).
        if not any((child.text or "").strip() in ids for child in record):
            continue
        for node in record.iter():
            if node.text and values.matches(node.text):
                node.text = None
                node.set(_XSI_NIL, "true")  # null, as Salesforce sends an empty field
                changed = True
    return tostring(root, encoding="utf-8", xml_declaration=True) if changed else None


def erasure_response(erasure: Erasure) -> dict[str, Any]:
    return {
        "lead_id": str(erasure.lead_id),
        "status": erasure.status,
        "event_ids": [str(e.id) for e in erasure.envelopes],
    }
