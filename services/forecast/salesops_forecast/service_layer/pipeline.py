"""Keeping the pipeline snapshot current from CRM and routing events (one job per event type
family)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.events import (
    Account,
    AccountTerritoryAssigned,
    Activity,
    Deal,
    Lead,
    LeadMerged,
    Rep,
    RulesetPublished,
)
from salesops_common.inbox import HandlerContext
from salesops_forecast.adapters import knowledge, repository
from salesops_forecast.domain.pipeline import (
    FieldValue,
    VersionedRecord,
    account_changes,
    deal_changes,
    lead_changes,
    merge_newer,
    rep_changes,
    stage_entry,
)

_PENDING = "forecast.pending_deals"
_PENDING_LEADS = "forecast.pending_leads"


@dataclass
class _Pending:
    """A batch's changes, written once before it commits: a deal created and closed in the
    same batch is one row write, and every stage sighting one statement."""

    deals: dict[UUID, VersionedRecord] = field(default_factory=dict)
    stages: dict[tuple[UUID, str], datetime] = field(default_factory=dict)

    async def write(self, session: AsyncSession) -> None:
        await repository.save_deals(session, self.deals)
        await repository.record_stages_reached(session, self.stages)


class _Written(Protocol):
    async def write(self, session: AsyncSession) -> None: ...


_W = TypeVar("_W", bound=_Written)


def _batched(ctx: HandlerContext, key: str, new: Callable[[], _W]) -> _W:
    """The batch's pending changes kept under ``key``, written just before it commits."""
    pending: _W | None = ctx.state.get(key)
    if pending is None:
        pending = ctx.state[key] = new()
        batch = pending

        async def write() -> None:
            await batch.write(ctx.session)

        ctx.before_commit(write)
    return pending


def _pending(ctx: HandlerContext) -> _Pending:
    return _batched(ctx, _PENDING, _Pending)


async def apply_deal_event(
    ctx: HandlerContext, *, event_type: str, deal: Deal, at: datetime, present: Collection[str]
) -> None:
    pending = _pending(ctx)
    stored = pending.deals.get(deal.id)
    if stored is None:
        stored = await repository.lock_deal(ctx.session, deal.id)
    merged = merge_newer(stored, deal_changes(event_type, deal, at=at, present=present), at=at)
    pending.deals[deal.id] = merge_newer(merged, stage_entry(stored, merged, at=at), at=at)
    if deal.stage is not None and event_type != "deal.deleted":
        key = (deal.id, deal.stage)
        pending.stages[key] = min(at, pending.stages.get(key, at))


async def apply_rep_event(
    session: AsyncSession, *, rep: Rep, at: datetime, present: Collection[str]
) -> None:
    stored = await repository.lock_rep(session, rep.id)
    await repository.save_rep(
        session, rep.id, merge_newer(stored, rep_changes(rep, present=present), at=at)
    )


async def apply_account_event(
    session: AsyncSession,
    *,
    event_type: str,
    account: Account,
    at: datetime,
    present: Collection[str],
) -> None:
    stored = await knowledge.lock_account(session, account.id)
    changes = account_changes(event_type, account, present=present)
    await knowledge.save_account(session, account.id, merge_newer(stored, changes, at=at))


async def apply_territory_assigned(
    session: AsyncSession, *, assigned: AccountTerritoryAssigned, at: datetime
) -> None:
    """An account's territory is a field like the others: the newest assignment wins."""
    stored = await knowledge.lock_account(session, assigned.account_id)
    changes = {"territory_id": assigned.territory_id}
    await knowledge.save_account(session, assigned.account_id, merge_newer(stored, changes, at=at))


async def apply_ruleset(
    session: AsyncSession, *, published: RulesetPublished, at: datetime
) -> None:
    await knowledge.record_ruleset(
        session, version=published.ruleset_version, ruleset=published.ruleset, at=at
    )


@dataclass
class _PendingLeads:
    """A batch's lead changes, in arrival order, applied just before it commits: every lead
    locked and read in one statement and written in another (two statements a lead made
    forecast's consumer the slowest to catch up after a load)."""

    changes: list[tuple[UUID, dict[str, FieldValue | None], datetime]] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        records = await knowledge.lock_leads(session, {lead_id for lead_id, _, _ in self.changes})
        for lead_id, changes, at in self.changes:
            records[lead_id] = merge_newer(records[lead_id], changes, at=at)
        await knowledge.save_leads(session, records)


async def apply_lead_event(
    ctx: HandlerContext, *, event_type: str, lead: Lead, at: datetime, present: Collection[str]
) -> None:
    pending = _batched(ctx, _PENDING_LEADS, _PendingLeads)
    pending.changes.append((lead.id, lead_changes(event_type, lead, present=present), at))


async def apply_lead_merged(session: AsyncSession, *, merged: LeadMerged, at: datetime) -> None:
    """The duplicate is no lead of its own any more; the lead it joined came in again."""
    stored = await knowledge.lock_lead(session, merged.id)
    changes = {"merged_into": merged.merged_into_id}
    await knowledge.save_lead(session, merged.id, merge_newer(stored, changes, at=at))
    await knowledge.count_duplicate(session, merged.merged_into_id)


async def apply_activity(session: AsyncSession, *, activity: Activity, at: datetime) -> None:
    occurred = activity.occurred_at or at
    for kind, subject in (("deal", activity.deal_id), ("lead", activity.lead_id)):
        if subject is not None:
            await knowledge.record_activity(session, kind=kind, subject_id=subject, at=occurred)


async def pipeline_summary(session: AsyncSession) -> dict[str, int]:
    counts = await repository.pipeline_counts(session)
    return {"open_deals": counts["open"], "won_deals": counts["won"], "lost_deals": counts["lost"]}
