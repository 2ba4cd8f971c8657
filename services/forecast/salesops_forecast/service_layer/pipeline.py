"""Keeping the pipeline snapshot current from CRM events (one job per event type family)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.events import Deal, Rep
from salesops_forecast.adapters import repository
from salesops_forecast.domain.pipeline import deal_changes, merge_newer, rep_changes


async def apply_deal_event(
    session: AsyncSession, *, event_type: str, deal: Deal, at: datetime
) -> None:
    stored = await repository.lock_deal(session, deal.id)
    changed = merge_newer(stored, deal_changes(event_type, deal, at=at), at=at)
    await repository.save_deal(session, deal.id, changed)
    if deal.stage is not None and event_type != "deal.deleted":
        await repository.record_stage_reached(
            session, deal_id=deal.id, stage=deal.stage, seen_at=at
        )


async def apply_rep_event(session: AsyncSession, *, rep: Rep, at: datetime) -> None:
    stored = await repository.lock_rep(session, rep.id)
    await repository.save_rep(session, rep.id, merge_newer(stored, rep_changes(rep), at=at))


async def pipeline_summary(session: AsyncSession) -> dict[str, int]:
    counts = await repository.pipeline_counts(session)
    return {"open_deals": counts["open"], "won_deals": counts["won"], "lost_deals": counts["lost"]}
