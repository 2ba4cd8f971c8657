"""What the projections hold, as the KPI math reads it: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from salesops_common.events import WorkingHours
from salesops_metrics.domain.money import Rates
from salesops_metrics.domain.periods import Window
from salesops_metrics.domain.territories import TerritoryModel


@dataclass(frozen=True)
class RepFact:
    id: UUID
    email: str | None = None
    name: str | None = None
    active: bool | None = None
    role: str | None = None
    manager_id: UUID | None = None
    team: str | None = None
    time_zone: str | None = None
    working_hours: WorkingHours | None = None
    licensed_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountFact:
    id: UUID
    industry: str | None = None
    employees: int | None = None
    territory_id: str | None = None


@dataclass(frozen=True)
class DealFact:
    id: UUID
    owner_id: UUID | None = None
    account_id: UUID | None = None
    lead_id: UUID | None = None
    amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    created: datetime | None = None
    closed: datetime | None = None
    outcome: str | None = None  # won, lost, or None while open
    expected_close: date | None = None


@dataclass(frozen=True)
class LeadFact:
    id: UUID
    lead_source: str | None = None
    industry: str | None = None
    employees: int | None = None
    account_id: UUID | None = None
    owner_id: UUID | None = None
    created: datetime | None = None
    converted: bool = False  # a lead.converted, or a deal that names the lead


@dataclass(frozen=True)
class AssignmentFact:
    """A lead.assigned or lead.reassigned, as the projection writes it (a row of
    lead_assignments, keyed by the event) and the KPIs read it."""

    event_id: UUID
    lead_id: UUID
    rep_id: UUID | None
    territory_id: str | None
    assigned_at: datetime
    event_time: datetime


@dataclass(frozen=True)
class TouchFact:
    """An outbound activity on a lead."""

    lead_id: UUID
    rep_id: UUID
    occurred: datetime


@dataclass(frozen=True)
class StageEntry:
    """A deal entering a stage, as the projection writes it (a row of deal_stages, keyed by
    the event that stated the stage) and the KPIs read it."""

    deal_id: UUID
    stage: str
    entered: datetime
    event_id: UUID


@dataclass(frozen=True)
class ForecastFact:
    id: UUID
    as_of: datetime
    period: str
    scope_kind: str
    scope_id: str | None
    currency: str
    point: Decimal


@dataclass(frozen=True)
class QuotaFact:
    period: str
    scope_kind: str
    scope_id: str | None
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Context:
    """What every KPI may use besides its own facts."""

    now: datetime
    window: Window
    rates: Rates
    fiscal_start_month: int = 1
    default_sla_minutes: float = 60.0
    reps: dict[UUID, RepFact] = field(default_factory=dict)
    accounts: dict[UUID, AccountFact] = field(default_factory=dict)
    territories: TerritoryModel = field(default_factory=TerritoryModel)
    # Dimensions worked out once per entity while this context lives (one request or scrape).
    memo: dict[tuple[str, UUID], dict[str, str | None]] = field(default_factory=dict)
