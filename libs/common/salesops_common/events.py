"""Canonical entities and every event type of the architecture, as pydantic models.

Versions change only by adding fields: consumers ignore fields they do not know
(``extra="ignore"``) and old payloads are upgraded on read by :func:`parse_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["hubspot", "salesforce", "pipedrive", "api", "csv"]

CRM_TOPIC = "salesops.crm.v1"
ROUTING_TOPIC = "salesops.routing.v1"
FORECAST_TOPIC = "salesops.forecast.v1"
ALL_TOPICS = (CRM_TOPIC, ROUTING_TOPIC, FORECAST_TOPIC)
CE_TYPE_PREFIX = "io.salesops."


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class EventData(BaseModel):
    """Base of every event's ``data``: unknown fields are ignored on read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1


class EntityData(EventData):
    """An entity as ingest knows it: canonical id plus where it came from."""

    id: UUID
    source: Source
    tenant: str = "default"
    source_id: str


class Lead(EntityData):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    website: str | None = None
    domain: str | None = None
    phone: str | None = None
    country: str | None = None
    region: str | None = None
    postal_code: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: Decimal | None = None
    currency: str | None = None
    lead_source: str | None = None
    status: str | None = None
    owner_id: UUID | None = None
    account_id: UUID | None = None
    created_at: datetime | None = None
    generated: bool | None = None


class Account(EntityData):
    name: str | None = None
    domain: str | None = None
    country: str | None = None
    region: str | None = None
    postal_code: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: Decimal | None = None
    currency: str | None = None
    year_established: int | None = None
    owner_id: UUID | None = None
    parent_id: UUID | None = None
    created_at: datetime | None = None


class Deal(EntityData):
    name: str | None = None
    account_id: UUID | None = None
    lead_id: UUID | None = None
    owner_id: UUID | None = None
    amount: Decimal | None = None
    amount_is_list_price: bool | None = None
    currency: str | None = None
    stage: str | None = None
    product: str | None = None
    created_at: datetime | None = None
    expected_close_date: date | None = None
    closed_at: datetime | None = None


class Activity(EntityData):
    type: Literal["call", "email", "meeting", "task", "note"] | None = None
    direction: Literal["outbound", "inbound"] | None = None
    tool: str | None = None
    subject: str | None = None
    rep_id: UUID | None = None
    lead_id: UUID | None = None
    deal_id: UUID | None = None
    account_id: UUID | None = None
    occurred_at: datetime | None = None


class WorkingHours(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    start: str = "09:00"
    end: str = "17:00"
    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])


class Rep(EntityData):
    email: str | None = None
    name: str | None = None
    active: bool | None = None
    role: Literal["rep", "manager"] | None = None
    manager_id: UUID | None = None
    team: str | None = None
    time_zone: str | None = None
    working_hours: WorkingHours | None = None
    licensed_tools: list[str] | None = None


class LeadMerged(EntityData):
    merged_into_id: UUID
    rule: str
    score: float


class LeadErased(EventData):
    """A person's data was erased (``salesops_common.erasure``): no personal field, so the event
    itself can be kept. Not an entity change: the lead still counts as it did."""

    id: UUID
    source: Source
    tenant: str = "default"
    source_id: str
    erased_at: datetime


class LeadAssigned(EventData):
    lead_id: UUID
    rep_id: UUID | None
    territory_id: str | None = None
    strategy: str
    ruleset_version: int = 0
    reason: str
    previous_rep_id: UUID | None = None
    assigned_at: datetime
    # The explanation in brief (matched account or territory and rule, skipped reps by
    # reason); the whole one is at routing's GET /v1/assignments/{lead_id}.
    summary: dict[str, Any] | None = None


class LeadSlaBreached(EventData):
    lead_id: UUID
    rep_id: UUID | None
    territory_id: str | None = None
    due_at: datetime
    breached_at: datetime


class AccountTerritoryAssigned(EventData):
    account_id: UUID
    territory_id: str | None
    ruleset_version: int


class RulesetPublished(EventData):
    ruleset_version: int
    ruleset: dict[str, Any]


class ForecastScope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["company", "territory", "team", "rep"]
    id: str | None = None


class ForecastPublished(EventData):
    forecast_id: UUID
    as_of: datetime
    period: str
    scope: ForecastScope
    currency: str
    point: Decimal
    lo80: Decimal
    hi80: Decimal
    lo95: Decimal
    hi95: Decimal
    categories: dict[str, Decimal]
    methods: dict[str, float]


class LeadScored(EventData):
    lead_id: UUID
    probability: float
    reasons: list[str]


class DealScored(EventData):
    deal_id: UUID
    win_probability: float
    close_in_period_probability: float | None = None


@dataclass(frozen=True)
class EventType:
    """What the system knows about one event type: its model, topic and key field."""

    name: str
    model: type[EventData]
    topic: str
    key_field: str

    @property
    def ce_type(self) -> str:
        return CE_TYPE_PREFIX + self.name


def _types() -> dict[str, EventType]:
    entity_events: dict[str, type[EntityData]] = {
        "lead": Lead,
        "account": Account,
        "deal": Deal,
        "activity": Activity,
        "rep": Rep,
    }
    verbs = {
        "lead": ("created", "updated", "converted", "disqualified", "deleted"),
        "account": ("created", "updated", "deleted"),
        "deal": ("created", "updated", "stage_changed", "won", "lost", "deleted"),
        "activity": ("logged",),
        "rep": ("created", "updated"),
    }
    out: dict[str, EventType] = {}
    for entity, model in entity_events.items():
        for verb in verbs[entity]:
            name = f"{entity}.{verb}"
            out[name] = EventType(name, model, CRM_TOPIC, "id")
    out["lead.merged"] = EventType("lead.merged", LeadMerged, CRM_TOPIC, "id")
    out["lead.erased"] = EventType("lead.erased", LeadErased, CRM_TOPIC, "id")
    routing: list[tuple[str, type[EventData], str]] = [
        ("lead.assigned", LeadAssigned, "lead_id"),
        ("lead.reassigned", LeadAssigned, "lead_id"),
        ("lead.sla_breached", LeadSlaBreached, "lead_id"),
        ("account.territory_assigned", AccountTerritoryAssigned, "account_id"),
        ("ruleset.published", RulesetPublished, "ruleset_version"),
    ]
    forecast: list[tuple[str, type[EventData], str]] = [
        ("forecast.published", ForecastPublished, "forecast_id"),
        ("lead.scored", LeadScored, "lead_id"),
        ("deal.scored", DealScored, "deal_id"),
    ]
    for name, data_model, key in routing:
        out[name] = EventType(name, data_model, ROUTING_TOPIC, key)
    for name, data_model, key in forecast:
        out[name] = EventType(name, data_model, FORECAST_TOPIC, key)
    return out


EVENT_TYPES: dict[str, EventType] = _types()
INGEST_EVENT_TYPES = frozenset(n for n, t in EVENT_TYPES.items() if t.topic == CRM_TOPIC)

# Upcasters: (event type, schema_version) -> function that lifts a payload one version.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UnknownEventType(ValueError):
    pass


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise UnknownEventType(name) from None


def parse_data(type_name: str, data: dict[str, Any]) -> EventData:
    """Validate ``data`` of an event, upgrading old schema versions first."""
    spec = event_type(type_name)
    version = int(data.get("schema_version", 1))
    while (type_name, version) in UPCASTERS:
        data = UPCASTERS[(type_name, version)](data)
        version = int(data["schema_version"])
    return spec.model.model_validate(data)
