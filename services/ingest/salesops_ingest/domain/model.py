"""Ingest's domain: what a client may send, and how it becomes a canonical event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, Union, get_args
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)

from salesops_common.envelope import deterministic_event_id
from salesops_common.events import (
    EVENT_TYPES,
    INGEST_EVENT_TYPES,
    EntityData,
    Source,
)

# lead.merged is ingest's own finding about duplicates, lead.erased its answer to an erasure
# (DELETE /v1/leads/{id}): clients never send them.
ACCEPTED_TYPES = frozenset(INGEST_EVENT_TYPES - {"lead.merged", "lead.erased"})
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
# Per entity: (canonical field, client field, kind of record referenced).
ENTITY_REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {}
for _name in sorted(ACCEPTED_TYPES):
    _entity = _name.split(".")[0]
    if _entity not in INPUT_MODELS:
        _model = EVENT_TYPES[_name].model
        assert issubclass(_model, EntityData)
        INPUT_MODELS[_entity] = _input_model(_entity, _model)
        ENTITY_REFERENCES[_entity] = tuple(
            (f, _source_ref(f), kind) for f, kind in REFERENCES.items() if f in _model.model_fields
        )


class InboundEvent(BaseModel):
    """One event as a client posts it to ``POST /v1/events``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str
    source: Source = "api"
    tenant: str = Field("default", min_length=1, max_length=128)
    source_event_id: str = Field(min_length=1, max_length=512)
    occurred_at: AwareDatetime
    data: Any

    @property
    def entity(self) -> str:
        return self.type.split(".")[0]

    @property
    def event_id(self) -> UUID:
        return deterministic_event_id(self.source, self.tenant, self.source_event_id)


# One model per entity validates an event and its data in a single pass.
EVENT_MODELS: dict[str, type[InboundEvent]] = {
    entity: create_model(f"{entity.title()}Event", __base__=InboundEvent, data=(model, Field(...)))
    for entity, model in INPUT_MODELS.items()
}


@dataclass(frozen=True)
class EventError:
    index: int
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class RecordKey(NamedTuple):
    """A CRM record: unique only within (source, tenant) and kind. A tuple: hashed in C,
    and the hot path hashes several per event."""

    kind: str
    source: str
    tenant: str
    source_id: str


@dataclass(frozen=True)
class ValidEvent:
    """A validated event with what accepting it needs, computed once."""

    event: InboundEvent
    data: BaseModel
    raw: dict[str, Any]
    event_id: UUID
    subject: RecordKey
    references: tuple[tuple[str, RecordKey], ...]

    @property
    def keys(self) -> list[RecordKey]:
        return [self.subject, *(key for _, key in self.references)]


def _entity_of(raw: Any) -> str | None:
    type_name = raw.get("type") if isinstance(raw, dict) else getattr(raw, "type", None)
    if not isinstance(type_name, str) or type_name not in ACCEPTED_TYPES:
        return None
    return type_name.split(".")[0]


# The whole batch in one pydantic-core pass: the event's type picks its entity's model.
_ANY_EVENT: Any = Annotated[
    Union[tuple(Annotated[m, Tag(e)] for e, m in EVENT_MODELS.items())],  # noqa: UP007
    Discriminator(_entity_of),
]
_BATCH: TypeAdapter[list[InboundEvent]] = TypeAdapter(list[_ANY_EVENT])


def _batch_errors(items: list[Any], exc: ValidationError) -> list[EventError]:
    known = ", ".join(sorted(ACCEPTED_TYPES))
    out = []
    for err in exc.errors():
        index, *path = err["loc"]
        if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            raw = items[int(index)]
            given = raw.get("type") if isinstance(raw, dict) else None
            out.append(
                EventError(int(index), "type", f"unknown event type {given!r}; known: {known}")
            )
            continue
        field = ".".join(str(p) for p in path[1:])  # path[0] is the entity tag
        out.append(EventError(int(index), field, err["msg"]))
    return out


def validate_events(items: list[Any]) -> list[ValidEvent] | list[EventError]:
    """Validate every posted event: all valid, or every error with its index and field."""
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            return [EventError(index, "", "an event must be a JSON object")]
    try:
        events = _BATCH.validate_python(items)
    except ValidationError as exc:
        return _batch_errors(items, exc)
    return [_valid(event, event.data, raw) for event, raw in zip(events, items, strict=True)]


def _valid(event: InboundEvent, data: BaseModel, raw: dict[str, Any]) -> ValidEvent:
    values = data.__dict__
    references = tuple(
        (field, RecordKey(kind, event.source, event.tenant, values[client_field]))
        for field, client_field, kind in ENTITY_REFERENCES[event.entity]
        if values[client_field]
    )
    subject = RecordKey(event.entity, event.source, event.tenant, values["source_id"])
    return ValidEvent(event, data, raw, event.event_id, subject, references)


SOURCES: tuple[str, ...] = get_args(Source)
