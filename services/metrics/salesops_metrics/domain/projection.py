"""What each event changes in the projections, as plain values (the adapters write them).

An entity event changes the fields it carries, each stamped with the event's time: the
projection keeps, field by field, the value with the newest stamp (on a tie the later
arrival), so events about one entity may come in any order. ingest sends only the fields
that changed; a null clears a field. Only the fields a KPI reads are kept (no names or
e-mails of leads: metrics holds no more personal data than it needs; reps' e-mails name
territory members).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from salesops_common.envelope import Envelope
from salesops_common.events import (
    AccountTerritoryAssigned,
    Deal,
    EntityData,
    ForecastPublished,
    LeadAssigned,
    LeadErased,
    LeadMerged,
    LeadSlaBreached,
    RulesetPublished,
)
from salesops_metrics.domain.dimensions import industry_key
from salesops_metrics.domain.facts import AssignmentFact, StageEntry

Table = Literal["reps", "accounts", "leads", "deals", "activities"]
TABLES: dict[str, Table] = {
    "rep": "reps",
    "account": "accounts",
    "lead": "leads",
    "deal": "deals",
    "activity": "activities",
}
KEPT: dict[Table, frozenset[str]] = {
    "reps": frozenset(
        {
            "source",
            "email",
            "name",
            "active",
            "role",
            "manager_id",
            "team",
            "time_zone",
            "working_hours",
            "licensed_tools",
        }
    ),  # fmt: skip
    "accounts": frozenset({"source", "industry", "employees", "owner_id", "parent_id"}),
    "leads": frozenset(
        {
            "source",
            "lead_source",
            "industry",
            "employees",
            "account_id",
            "owner_id",
            "created_at",
            "status",
        }
    ),  # fmt: skip
    "deals": frozenset(
        {
            "source",
            "account_id",
            "lead_id",
            "owner_id",
            "amount",
            "currency",
            "stage",
            "product",
            "created_at",
            "expected_close_date",
            "closed_at",
        }
    ),  # fmt: skip
    "activities": frozenset(
        {"source", "type", "direction", "tool", "rep_id", "lead_id", "deal_id", "occurred_at"}
    ),
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, and immutable in PostgreSQL expressions."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


# What JSON holds as it is: most fields of most events (checked first, by exact type: a
# pydantic model's isinstance goes through its metaclass, slow on the consumer's hot path).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return micros(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class EntityChange:
    table: Table
    id: UUID
    fields: dict[str, Any]
    stamp: int


@dataclass(frozen=True)
class Breached:
    event_id: UUID
    fact: LeadSlaBreached


@dataclass(frozen=True)
class Merged:
    event_id: UUID
    fact: LeadMerged
    event_time: datetime


@dataclass(frozen=True)
class RulesetKnown:
    fact: RulesetPublished
    event_time: datetime


@dataclass(frozen=True)
class ForecastKnown:
    fact: ForecastPublished


@dataclass(frozen=True)
class Erased:
    """A person's data was erased: the personal fields of the lead's logged events are nulled
    (no projection keeps any), so a rebuild cannot bring them back."""

    lead_id: UUID


@dataclass(frozen=True)
class IndustryNamed:
    """An industry as an entity names it, and as a segment reads it: the database groups
    segments by this key, worked out here in Python as the domain works it out."""

    raw: str
    key: str


Effect = (
    EntityChange
    | StageEntry
    | AssignmentFact
    | Breached
    | Merged
    | RulesetKnown
    | ForecastKnown
    | IndustryNamed
    | Erased
)


def effects_of(event: Envelope) -> list[Effect]:
    """The projection changes ``event`` makes; an invalid payload raises (dead letter)."""
    data = event.parsed()
    if isinstance(data, LeadErased):
        return [Erased(data.id)]
    if isinstance(data, LeadMerged):
        change = EntityChange(
            "leads", data.id, {"merged_into_id": str(data.merged_into_id)}, micros(event.time)
        )
        return [Merged(event.id, data, event.time), change]
    if isinstance(data, EntityData):
        return _entity_effects(event, data)
    if isinstance(data, LeadAssigned):
        return [
            AssignmentFact(
                event.id, data.lead_id, data.rep_id, data.territory_id, data.assigned_at, event.time
            )
        ]
    if isinstance(data, LeadSlaBreached):
        return [Breached(event.id, data)]
    if isinstance(data, RulesetPublished):
        return [RulesetKnown(data, event.time)]
    if isinstance(data, ForecastPublished):
        return [ForecastKnown(data)]
    if isinstance(data, AccountTerritoryAssigned):
        fields = {"territory_id": data.territory_id}
        return [EntityChange("accounts", data.account_id, fields, micros(event.time))]
    return []


def _entity_effects(event: Envelope, data: EntityData) -> list[Effect]:
    entity, _, verb = event.type.partition(".")
    table = TABLES[entity]
    fields = {name: jsonable(getattr(data, name)) for name in data.model_fields_set & KEPT[table]}
    at = micros(event.time)
    effects: list[Effect] = []
    if verb == "created":
        fields.update(deleted=False, created_event_at=at)
    elif verb == "logged":
        fields["logged_at"] = at
    elif verb == "deleted":
        fields["deleted"] = True
    elif verb in ("converted", "disqualified"):
        fields[f"{verb}_at"] = at
    elif verb in ("won", "lost"):
        fields.update(outcome=verb, outcome_at=at)
        stage = data.stage if isinstance(data, Deal) and data.stage else verb
        effects.append(StageEntry(data.id, stage, event.time, event.id))
    elif verb == "stage_changed":
        fields["outcome"] = None  # ingest publishes won / lost for closing stages
    if isinstance(data, Deal) and verb not in ("won", "lost") and data.stage:
        effects.append(StageEntry(data.id, data.stage, event.time, event.id))
    industry = fields.get("industry")
    if isinstance(industry, str) and industry:
        effects.append(IndustryNamed(industry, industry_key(industry)))
    return [EntityChange(table, data.id, fields, at), *effects]


@dataclass
class CombinedChange:
    """Changes to one entity within a batch, merged as the database would merge them one by
    one: per field the newest stamp, on a tie the later change."""

    table: Table
    id: UUID
    fields: dict[str, Any]
    stamps: dict[str, int]


def combine(changes: Iterable[EntityChange]) -> list[CombinedChange]:
    out: dict[tuple[Table, UUID], CombinedChange] = {}
    for change in changes:
        known = out.get((change.table, change.id))
        if known is None:
            known = out[(change.table, change.id)] = CombinedChange(change.table, change.id, {}, {})
        for name, value in change.fields.items():
            if change.stamp >= known.stamps.get(name, change.stamp):
                known.fields[name] = value
                known.stamps[name] = change.stamp
    return list(out.values())
