"""An assignment: the routing decision for one lead, as stored, published and explained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from salesops_common.envelope import deterministic_event_id
from salesops_common.events import LeadAssigned
from salesops_routing.domain.ruleset import Sla

LEAD_ASSIGNED = "lead.assigned"
LEAD_REASSIGNED = "lead.reassigned"
ACCOUNT_OWNER = "account_owner"
FALLBACK_QUEUE = "fallback_queue"

Kind = Literal["assigned", "reassigned"]


@dataclass(frozen=True)
class Decision:
    """Where a lead goes and everything that explains it (no side effects yet)."""

    rep_id: UUID | None  # None: the fallback queue
    rep_name: str | None
    territory_id: str | None
    team: str | None
    strategy: str
    reason: str
    sla: Sla | None
    explanation: dict[str, Any]
    # Rotation state to store when the decision is kept: (territory, rep, position, clock).
    rotation: tuple[str, UUID, float, float] | None = None


@dataclass(frozen=True)
class Assignment:
    lead_id: UUID
    kind: Kind
    rep_id: UUID | None
    rep_name: str | None
    territory_id: str | None
    team: str | None
    strategy: str
    reason: str
    ruleset_version: int
    previous_rep_id: UUID | None
    assigned_at: datetime
    sla: Sla | None
    explanation: dict[str, Any]
    event_id: UUID

    @classmethod
    def of(
        cls,
        decision: Decision,
        *,
        lead_id: UUID,
        kind: Kind,
        ruleset_version: int,
        previous_rep_id: UUID | None,
        assigned_at: datetime,
        sequence: int,
    ) -> Assignment:
        # One fact per decision: the n-th decision about a lead always has the same id, so a
        # re-run after a crash never mints a second one.
        name = LEAD_ASSIGNED if kind == "assigned" else LEAD_REASSIGNED
        key = str(lead_id) if kind == "assigned" else f"{lead_id}:{sequence}"
        return cls(
            lead_id=lead_id,
            kind=kind,
            rep_id=decision.rep_id,
            rep_name=decision.rep_name,
            territory_id=decision.territory_id,
            team=decision.team,
            strategy=decision.strategy,
            reason=decision.reason,
            ruleset_version=ruleset_version,
            previous_rep_id=previous_rep_id,
            assigned_at=assigned_at,
            sla=decision.sla,
            explanation={**decision.explanation, "ruleset_version": ruleset_version},
            event_id=deterministic_event_id("routing", name, key),
        )

    @property
    def event_type(self) -> str:
        return LEAD_ASSIGNED if self.kind == "assigned" else LEAD_REASSIGNED

    def fact(self) -> LeadAssigned:
        return LeadAssigned(
            lead_id=self.lead_id,
            rep_id=self.rep_id,
            territory_id=self.territory_id,
            strategy=self.strategy,
            ruleset_version=self.ruleset_version,
            reason=self.reason,
            previous_rep_id=self.previous_rep_id,
            assigned_at=self.assigned_at,
        )
