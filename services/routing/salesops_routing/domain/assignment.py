"""An assignment: the routing decision for one lead, as stored and as published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from salesops_common.envelope import deterministic_event_id
from salesops_common.events import LeadAssigned
from salesops_routing.domain.rotation import RULESET_VERSION, RoutingDecision

LEAD_ASSIGNED = "lead.assigned"


@dataclass(frozen=True)
class Assignment:
    lead_id: UUID
    decision: RoutingDecision
    assigned_at: datetime

    @property
    def rep_id(self) -> UUID | None:
        return self.decision.rep.id if self.decision.rep else None

    @property
    def event_id(self) -> UUID:
        # One fact per lead: a re-run of the same decision never mints a second id.
        return deterministic_event_id("routing", LEAD_ASSIGNED, str(self.lead_id))

    def fact(self) -> LeadAssigned:
        return LeadAssigned(
            lead_id=self.lead_id,
            rep_id=self.rep_id,
            territory_id=self.decision.territory_id,
            strategy=self.decision.strategy,
            ruleset_version=RULESET_VERSION,
            reason=self.decision.reason,
            previous_rep_id=None,
            assigned_at=self.assigned_at,
        )
