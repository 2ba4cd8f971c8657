"""The pipeline snapshot: what forecast knows of each deal, rep, account and lead, rebuilt
from CRM events.

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

from salesops_common.events import Account, Deal, Lead, Rep

Outcome = Literal["open", "won", "lost"]
FieldValue = str | Decimal | UUID | date | datetime | bool | int

DEAL_FIELDS = (
    "stage",
    "amount",
    "currency",
    "owner_id",
    "account_id",
    "created_at",
    "expected_close_date",
    "closed_at",
    "product",
    "lead_id",
)
REP_FIELDS = ("name", "team", "active", "email", "manager_id")
ACCOUNT_FIELDS = ("industry", "employees", "annual_revenue", "country", "region")
LEAD_FIELDS = (
    "lead_source",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "region",
    "account_id",
    "created_at",
)
OUTCOMES: Mapping[str, Outcome] = {"deal.won": "won", "deal.lost": "lost"}
# A lead's lifecycle, from the event that moved it there (its CRM status text is not used:
# every CRM names its statuses differently).
LEAD_LIFECYCLES: Mapping[str, str] = {
    "lead.created": "open",
    "lead.converted": "converted",
    "lead.disqualified": "disqualified",
    "lead.deleted": "deleted",
}


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


def stage_entry(
    before: VersionedRecord, after: VersionedRecord, *, at: datetime
) -> dict[str, FieldValue | None]:
    """When a deal's stage changes, it entered the new one at the event's time (age in
    stage counts from there); an event that leaves the stage as it was changes nothing."""
    stage = after.values.get("stage")
    if stage is None or stage == before.values.get("stage"):
        return {}
    return {"stage_entered_at": at}


def rep_changes(rep: Rep, *, present: Collection[str]) -> dict[str, FieldValue | None]:
    changes = {name: getattr(rep, name) for name in REP_FIELDS if name in present}
    if isinstance(email := changes.get("email"), str):
        changes["email"] = email.strip().lower()
    return changes


def account_changes(
    event_type: str, account: Account, *, present: Collection[str]
) -> dict[str, FieldValue | None]:
    if event_type == "account.deleted":
        return {"deleted": True}
    changes: dict[str, FieldValue | None] = {
        name: getattr(account, name) for name in ACCOUNT_FIELDS if name in present
    }
    if event_type == "account.created":
        changes["deleted"] = False
    return changes


def lead_changes(
    event_type: str, lead: Lead, *, present: Collection[str]
) -> dict[str, FieldValue | None]:
    """A converted, disqualified or deleted lead keeps its attributes: they are what the
    lead model learns from."""
    changes: dict[str, FieldValue | None] = {}
    if event_type != "lead.deleted":
        changes = {name: getattr(lead, name) for name in LEAD_FIELDS if name in present}
    if event_type in LEAD_LIFECYCLES:
        changes["lifecycle"] = LEAD_LIFECYCLES[event_type]
    return changes
