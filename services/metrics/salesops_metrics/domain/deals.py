"""A deal's outcome: the newest report of it, by event time, is the truth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

Outcome = Literal["won", "lost"]


@dataclass(frozen=True)
class DealOutcome:
    """What one ``deal.won`` or ``deal.lost`` says about a deal, and when it was said."""

    deal_id: UUID
    outcome: Outcome
    amount: Decimal | None
    currency: str | None
    owner_id: UUID | None
    closed_at: datetime | None
    event_time: datetime


def latest_outcome(known: DealOutcome | None, reported: DealOutcome) -> DealOutcome:
    """The outcome that stands after ``reported`` arrives.

    A CRM may reopen a won deal and lose it, and events about one deal may arrive late
    after a replay: the newest by event time wins, so an older report arriving last changes
    nothing. On a tie the later arrival wins; per-key order holds, so a replay ties the same way.
    """
    if known is None or reported.event_time >= known.event_time:
        return reported
    return known
