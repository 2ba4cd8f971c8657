"""The dimensions a KPI can be grouped by, worked out for one deal, lead, assignment or rep.

- ``rep``: the deal's owner; for a lead, the rep of its newest assignment by event time (its
  owner when routing never assigned it); for an assignment, its rep.
- ``team`` and ``manager``: that rep's ``team`` and ``manager_id``, as the rep is now.
- ``territory``: for a deal, its account's territory (``account.territory_assigned``), else
  its owner's primary territory in the newest ruleset; for a lead or an assignment, the
  territory routing assigned it in; for a rep, the rep's primary territory.
- ``source``: the lead source (``lead_source``: Web, Referral, ...); for a deal, that of the
  lead it came from (``lead_id``).
- ``segment``: ``<industry>/<employee band>`` of the account (a lead with no account: its own
  industry and employees); bands 1-49, 50-249, 250-999, 1000-4999, 5000+, and ``unknown``.
- ``tool``: the tool an activity was logged through.

A value that is not known is None (``null`` in JSON, ``none`` as a Prometheus label).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from uuid import UUID

from salesops_metrics.domain.facts import (
    AccountFact,
    AssignmentFact,
    Context,
    DealFact,
    LeadFact,
    RepFact,
)

Dimension = Literal["territory", "rep", "team", "manager", "source", "segment", "tool"]
DIMENSIONS: tuple[Dimension, ...] = (
    "territory",
    "rep",
    "team",
    "manager",
    "source",
    "segment",
    "tool",
)
Dims = dict[str, str | None]
BANDS = ((50, "1-49"), (250, "50-249"), (1000, "250-999"), (5000, "1000-4999"))


def employee_band(employees: int | None) -> str:
    if employees is None or employees < 1:
        return "unknown"
    return next((name for limit, name in BANDS if employees < limit), "5000+")


def industry_key(industry: str) -> str:
    """How an industry reads in a segment: trimmed, lower-cased."""
    return industry.strip().lower()


def segment(industry: str | None, employees: int | None) -> str | None:
    if not industry and employees is None:
        return None
    return f"{industry_key(industry or 'unknown')}/{employee_band(employees)}"


def rep_dims(ctx: Context, rep_id: UUID | None) -> Dims:
    """A fresh dict each call (callers add to it); worked out once per rep."""
    if rep_id is None:
        return _rep_dims(ctx, None)
    found = ctx.memo.get(("rep", rep_id))
    if found is None:
        found = ctx.memo[("rep", rep_id)] = _rep_dims(ctx, rep_id)
    return dict(found)


def _rep_dims(ctx: Context, rep_id: UUID | None) -> Dims:
    rep = ctx.reps.get(rep_id) if rep_id else None
    return {
        "rep": str(rep_id) if rep_id else None,
        "team": rep.team if rep else None,
        "manager": str(rep.manager_id) if rep and rep.manager_id else None,
        "territory": primary_territory(ctx, rep_id, rep),
    }


def primary_territory(ctx: Context, rep_id: UUID | None, rep: RepFact | None) -> str | None:
    return ctx.territories.primary_territory(rep_id, rep.email if rep else None)


def _account_segment(account: AccountFact | None) -> str | None:
    return segment(account.industry, account.employees) if account else None


def deal_dims(ctx: Context, deal: DealFact, lead_sources: Mapping[UUID, str | None]) -> Dims:
    """A fresh dict each call; worked out once per deal (its lead's source included)."""
    found = ctx.memo.get(("deal", deal.id))
    if found is None:
        found = ctx.memo[("deal", deal.id)] = _deal_dims(ctx, deal, lead_sources)
    return dict(found)


def deal_territory(ctx: Context, deal: DealFact) -> str | None:
    account = ctx.accounts.get(deal.account_id) if deal.account_id else None
    if account is not None and account.territory_id is not None:
        return account.territory_id
    return primary_territory(
        ctx, deal.owner_id, ctx.reps.get(deal.owner_id) if deal.owner_id else None
    )


def _deal_dims(ctx: Context, deal: DealFact, lead_sources: Mapping[UUID, str | None]) -> Dims:
    dims = rep_dims(ctx, deal.owner_id)
    account = ctx.accounts.get(deal.account_id) if deal.account_id else None
    dims["territory"] = deal_territory(ctx, deal)
    dims["source"] = lead_sources.get(deal.lead_id) if deal.lead_id else None
    dims["segment"] = _account_segment(account)
    return dims


def lead_dims(ctx: Context, lead: LeadFact | None, latest: AssignmentFact | None) -> Dims:
    """A lead's dimensions; ``latest`` is its newest assignment (None if never assigned)."""
    rep_id = latest.rep_id if latest else (lead.owner_id if lead else None)
    dims = rep_dims(ctx, rep_id)
    dims["territory"] = latest.territory_id if latest else None
    dims.update(lead_attributes(ctx, lead))
    return dims


def lead_attributes(ctx: Context, lead: LeadFact | None) -> Dims:
    if lead is None:
        return {"source": None, "segment": None}
    account = ctx.accounts.get(lead.account_id) if lead.account_id else None
    seg = _account_segment(account) if account else segment(lead.industry, lead.employees)
    return {"source": lead.lead_source, "segment": seg}


def assignment_dims(ctx: Context, assignment: AssignmentFact, lead: LeadFact | None) -> Dims:
    dims = rep_dims(ctx, assignment.rep_id)
    dims["territory"] = assignment.territory_id
    dims.update(lead_attributes(ctx, lead))
    return dims
