"""Ingest's domain: what a client may send, and how it becomes a canonical event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model

from salesops_common.envelope import Envelope, deterministic_event_id
from salesops_common.events import (
    EVENT_TYPES,
    INGEST_EVENT_TYPES,
    EntityData,
    Source,
    parse_data,
)

# lead.merged is ingest's own finding about duplicates: clients never send it.
ACCEPTED_TYPES = frozenset(INGEST_EVENT_TYPES - {"lead.merged"})
_IDENTITY = {"schema_version", "id", "source", "tenant", "source_id"}

# Which kind of record each reference names, by its canonical field.
REFERENCES: dict[str, str] = {
    "owner_id": "rep",
    "rep_id": "rep",
    "manager_id": "rep",
    "account_id": "account",
    "parent_id": "account",
    "lead_id": "lead",
    "deal_id": "deal",
}


def _source_ref(field: str) -> str:
    return field.removesuffix("_id") + "_source_id"


def _input_model(entity: str, model: type[EntityData]) -> type[BaseModel]:
    """The client-facing shape of an entity: references by source id, no canonical ids."""
    fields: dict[str, Any] = {"source_id": (str, Field(min_length=1, max_length=256))}
    for name, info in model.model_fields.items():
        if name in _IDENTITY:
            continue
        if name in REFERENCES:
            fields[_source_ref(name)] = (str | None, Field(None, min_length=1, max_length=256))
        else:
            fields[name] = (info.annotation, None)
    config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    return create_model(f"{entity.title()}Input", __config__=config, **fields)


INPUT_MODELS: dict[str, type[BaseModel]] = {}
for _name in sorted(ACCEPTED_TYPES):
    _entity = _name.split(".")[0]
    if _entity not in INPUT_MODELS:
        _model = EVENT_TYPES[_name].model
        assert issubclass(_model, EntityData)
        INPUT_MODELS[_entity] = _input_model(_entity, _model)


class InboundEvent(BaseModel):
    """One event as a client posts it to ``POST /v1/events``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str
    source: Source = "api"
    tenant: str = Field("default", min_length=1, max_length=128)
    source_event_id: str = Field(min_length=1, max_length=512)
    occurred_at: AwareDatetime
    data: dict[str, Any]

    @property
    def entity(self) -> str:
        return self.type.split(".")[0]

    @property
    def event_id(self) -> UUID:
        return deterministic_event_id(self.source, self.tenant, self.source_event_id)


@dataclass(frozen=True)
class EventError:
    index: int
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class ValidEvent:
    event: InboundEvent
    data: BaseModel


def _errors(index: int, prefix: str, exc: ValidationError) -> list[EventError]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        out.append(EventError(index, loc, err["msg"]))
    return out


def validate_event(index: int, raw: object) -> ValidEvent | list[EventError]:
    """Validate the envelope, the type and the entity's data of one posted event."""
    if not isinstance(raw, dict):
        return [EventError(index, "", "an event must be a JSON object")]
    try:
        event = InboundEvent.model_validate(raw)
    except ValidationError as exc:
        return _errors(index, "", exc)
    if event.type not in ACCEPTED_TYPES:
        known = ", ".join(sorted(ACCEPTED_TYPES))
        return [EventError(index, "type", f"unknown event type {event.type!r}; known: {known}")]
    try:
        data = INPUT_MODELS[event.entity].model_validate(event.data)
    except ValidationError as exc:
        return _errors(index, "data", exc)
    return ValidEvent(event, data)


@dataclass(frozen=True)
class RecordKey:
    """A CRM record: unique only within (source, tenant) and kind."""

    kind: str
    source: str
    tenant: str
    source_id: str


def record_keys(valid: ValidEvent) -> list[RecordKey]:
    """The record the event is about, first, then every record it references."""
    ev, data = valid.event, valid.data
    keys = [RecordKey(ev.entity, ev.source, ev.tenant, data.source_id)]
    for field, kind in REFERENCES.items():
        ref = getattr(data, _source_ref(field), None)
        if ref:
            keys.append(RecordKey(kind, ev.source, ev.tenant, ref))
    return keys


def canonical_envelope(valid: ValidEvent, ids: dict[RecordKey, UUID]) -> Envelope:
    """Translate a validated event into the canonical event ingest publishes."""
    ev = valid.event
    subject = record_keys(valid)[0]
    fields = valid.data.model_dump(exclude_none=True, mode="json")
    payload: dict[str, Any] = {k: v for k, v in fields.items() if not k.endswith("_source_id")}
    for field, kind in REFERENCES.items():
        ref = fields.get(_source_ref(field))
        if ref:
            payload[field] = str(ids[RecordKey(kind, ev.source, ev.tenant, ref)])
    entity_id = ids[subject]
    payload.update(id=str(entity_id), source=ev.source, tenant=ev.tenant)
    canonical = parse_data(ev.type, payload)
    return Envelope(
        type=ev.type,
        source=f"/ingest/{ev.source}/{ev.tenant}",
        subject=str(entity_id),
        key=str(entity_id),
        data=canonical.model_dump(mode="json", exclude_none=True),
        id=ev.event_id,
        time=ev.occurred_at,
    )


SOURCES: tuple[str, ...] = get_args(Source)
