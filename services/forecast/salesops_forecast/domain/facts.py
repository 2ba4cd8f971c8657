"""What the models know of a deal or a lead: plain values, free of I/O, with their history
so that they can be seen as of any time (a backtest replays them as of past dates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from salesops_forecast.domain.pipeline import Outcome


@dataclass(frozen=True)
class DealFacts:
    deal_id: UUID
    outcome: Outcome
    stage: str | None  # the current stage (for a closed deal, the one it closed in)
    stage_entered_at: datetime | None
    # Every stage the deal was seen in, with its first sighting, oldest first.
    stages: tuple[tuple[str, datetime], ...] = ()
    amount: float | None = None
    currency: str | None = None
    product: str | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None
    expected_close_date: date | None = None
    owner_id: UUID | None = None
    manager_id: UUID | None = None
    team: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    territory: str | None = None
    activities: int = 0
    last_activity_at: datetime | None = None
    # When forecast first heard of the deal, for a deal without ``created_at`` (else None).
    first_seen_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.outcome != "open"

    def closed_before(self, t: datetime) -> bool:
        return self.closed and self.closed_at is not None and self.closed_at <= t

    def open_at(self, t: datetime) -> bool:
        if self.created_at is not None and self.created_at > t:
            return False
        return not self.closed or (self.closed_at is not None and self.closed_at > t)

    def stage_at(self, t: datetime) -> tuple[str | None, datetime | None]:
        """The stage the deal was in at ``t`` (never the stage it closed in), and since when."""
        if not self.closed and self.stage_entered_at is not None and t >= self.stage_entered_at:
            return self.stage, self.stage_entered_at
        seen = [
            (at, s) for s, at in self.stages if at <= t and not (self.closed and s == self.stage)
        ]
        if not seen:
            return (self.stage, None) if not self.closed else (None, None)
        at, stage = max(seen)
        return stage, at


@dataclass(frozen=True)
class LeadFacts:
    lead_id: UUID
    lifecycle: str  # open, converted, disqualified, deleted
    merged: bool = False
    lead_source: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    created_at: datetime | None = None
    decided_at: datetime | None = None  # when it was converted or disqualified
    activities: int = 0
    last_activity_at: datetime | None = None
    duplicates: int = 0
    # Outcomes of the deals it became (converted leads): "won", "lost" or "open".
    deal_outcomes: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.lifecycle == "open" and not self.merged

    def became_won_deal(self) -> bool | None:
        """True: a deal it became was won; False: disqualified, or every deal it became
        was lost; None: not known yet (open, or converted with a deal still open)."""
        if self.merged or self.lifecycle in ("open", "deleted"):
            return None
        if self.lifecycle == "disqualified":
            return False
        if "won" in self.deal_outcomes:
            return True
        if self.deal_outcomes and all(o == "lost" for o in self.deal_outcomes):
            return False
        return None
