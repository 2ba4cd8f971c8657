"""The pipeline snapshot: what forecast knows of each deal and rep, rebuilt from CRM events.

Events about one deal can arrive late or twice (a replay, a second CRM connector), and
updates carry only the fields that changed. So every field remembers the time of the event
that set it, and an event changes a field only if it is not older than that: the snapshot
converges to the same state whatever the delivery order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from salesops_common.events import Deal, Rep

Outcome = Literal["open", "won", "lost"]
FieldValue = str | Decimal | UUID | date | datetime | bool

DEAL_FIELDS = (
    "stage",
    "amount",
    "currency",
    "owner_id",
    "account_id",
    "created_at",
    "expected_close_date",
    "closed_at",
)
REP_FIELDS = ("name", "team", "active")
OUTCOMES: Mapping[str, Outcome] = {"deal.won": "won", "deal.lost": "lost"}


@dataclass(frozen=True)
class VersionedRecord:
    """A record's known fields, each with the event time that set it."""

    values: Mapping[str, FieldValue] = field(default_factory=dict)
    times: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def last_event_at(self) -> datetime | None:
        return max(self.times.values(), default=None)


def merge_newer(
    record: VersionedRecord, changes: Mapping[str, FieldValue | None], *, at: datetime
) -> VersionedRecord:
    """Apply the fields an event carries (a null clears one), unless a newer event already
    set them. Fields the event does not carry are not in ``changes``: they stay as they are."""
    values, times = dict(record.values), dict(record.times)
    for name, value in changes.items():
        known_since = times.get(name)
        if known_since is not None and at < known_since:
            continue
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
        times[name] = at
    return VersionedRecord(values, times)


def deal_changes(
    event_type: str, deal: Deal, *, at: datetime, present: Collection[str]
) -> dict[str, FieldValue | None]:
    """What one deal event says about the deal, as field changes: the fields it carries
    (``present``: the keys of its data), a null meaning the CRM cleared that field."""
    if event_type == "deal.deleted":
        return {"deleted": True}
    changes: dict[str, FieldValue | None] = {
        name: getattr(deal, name) for name in DEAL_FIELDS if name in present
    }
    if event_type == "deal.created":
        # A CRM that restores a deleted deal reports it as created again.
        changes.update(outcome="open", deleted=False)
    elif event_type in OUTCOMES:
        changes.update(outcome=OUTCOMES[event_type], closed_at=deal.closed_at or at)
    return changes


def rep_changes(rep: Rep, *, present: Collection[str]) -> dict[str, FieldValue | None]:
    return {name: getattr(rep, name) for name in REP_FIELDS if name in present}
