"""Keeping the pipeline snapshot current from CRM events (one job per event type family)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.events import Deal, Rep
from salesops_common.inbox import HandlerContext
from salesops_forecast.adapters import repository
from salesops_forecast.domain.pipeline import (
    VersionedRecord,
    deal_changes,
    merge_newer,
    rep_changes,
)

_PENDING = "forecast.pending_deals"


@dataclass
class _Pending:
    """A batch's changes, written once before it commits: a deal created and closed in the
    same batch is one row write, and every stage sighting one statement."""

    deals: dict[UUID, VersionedRecord] = field(default_factory=dict)
    stages: dict[tuple[UUID, str], datetime] = field(default_factory=dict)

    async def write(self, session: AsyncSession) -> None:
        await repository.save_deals(session, self.deals)
        await repository.record_stages_reached(session, self.stages)


def _pending(ctx: HandlerContext) -> _Pending:
    pending: _Pending | None = ctx.state.get(_PENDING)
    if pending is None:
        pending = ctx.state[_PENDING] = _Pending()
        batch = pending

        async def write() -> None:
            await batch.write(ctx.session)

        ctx.before_commit(write)
    return pending


async def apply_deal_event(
    ctx: HandlerContext, *, event_type: str, deal: Deal, at: datetime, present: Collection[str]
) -> None:
    pending = _pending(ctx)
    stored = pending.deals.get(deal.id)
    if stored is None:
        stored = await repository.lock_deal(ctx.session, deal.id)
    pending.deals[deal.id] = merge_newer(
        stored, deal_changes(event_type, deal, at=at, present=present), at=at
    )
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


async def pipeline_summary(session: AsyncSession) -> dict[str, int]:
    counts = await repository.pipeline_counts(session)
    return {"open_deals": counts["open"], "won_deals": counts["won"], "lost_deals": counts["lost"]}
