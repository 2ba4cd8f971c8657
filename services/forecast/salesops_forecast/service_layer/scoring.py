"""Scoring in a forecast run: read what the models learn from, fit and score (in a worker
thread: it is CPU work), then keep every score and publish ``deal.scored`` and
``lead.scored`` through the outbox when a score moved materially."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.envelope import Envelope
from salesops_common.events import DealScored, LeadScored
from salesops_common.kafka import Topics
from salesops_common.outbox import add_to_outbox
from salesops_forecast.adapters import knowledge, scores
from salesops_forecast.adapters.scores import ScoreRows
from salesops_forecast.domain.facts import DealFacts, LeadFacts
from salesops_forecast.domain.forecast import (
    STAGE_WEIGHTED_PIPELINE,
    WIN_MODEL_PIPELINE,
    OpenDeal,
)
from salesops_forecast.domain.lead_scoring import LeadModel, LeadScores, fit_lead_model, score_leads
from salesops_forecast.domain.periods import FiscalPeriod
from salesops_forecast.domain.score_changes import to_publish
from salesops_forecast.domain.territories import deal_territory, primary_territories
from salesops_forecast.domain.win_probability import (
    WIN_MODEL,
    DealModel,
    DealScores,
    fit_deal_model,
    score_deals,
)

SOURCE = "/forecast"
PROBABILITY_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Scoring:
    deal_model: DealModel
    deals: DealScores
    territories: Mapping[UUID, str | None]
    lead_model: LeadModel | None
    leads: LeadScores | None
    # Each rep's primary territory in the newest ruleset (a deal's, without an account's).
    primary_territories: Mapping[UUID, str] = field(default_factory=dict)
    # Every deal the models saw (open, and closed with a close time), with its territory:
    # the bookings forecast replays them (domain/method).
    facts: Sequence[DealFacts] = ()

    @property
    def model_trained(self) -> bool:
        return self.deal_model.name == WIN_MODEL

    def pipeline_method(self) -> str:
        """The forecast's pipeline method: open deals weighted by the model's P(win) when it
        is trained, by the stage table otherwise."""
        return WIN_MODEL_PIPELINE if self.model_trained else STAGE_WEIGHTED_PIPELINE

    def forecast_probabilities(self) -> dict[UUID, Decimal] | None:
        """P(win) per open deal for the pipeline forecast, when the model (not the stage
        table it falls back to) made them."""
        if not self.model_trained:
            return None
        return {
            deal_id: Decimal(float(p)).quantize(PROBABILITY_PLACES)
            for deal_id, p in zip(self.deals.deal_ids, self.deals.win, strict=True)
        }

    def models(self) -> dict[str, Any]:
        """The models of this run, as kept with it: name, data, held-out quality."""
        return {
            "deal_model": self.deal_model.describe(),
            "lead_model": self.lead_model.describe() if self.lead_model else None,
        }

    def with_territories(self, deals: Sequence[OpenDeal]) -> list[OpenDeal]:
        return [replace(d, territory=self.territories.get(d.deal_id)) for d in deals]


@dataclass(frozen=True)
class Published:
    deals: int
    leads: int


def _fit_and_score(
    deals: Sequence[DealFacts],
    leads: Sequence[LeadFacts],
    *,
    as_of: datetime,
    periods: Sequence[FiscalPeriod],
) -> Scoring:
    deal_model = fit_deal_model(deals, as_of=as_of)
    open_deals = [d for d in deals if not d.closed]
    lead_model = fit_lead_model(leads, now=as_of)
    open_leads = [lead for lead in leads if lead.open]
    return Scoring(
        deal_model=deal_model,
        deals=score_deals(deal_model, open_deals, as_of=as_of, periods=periods),
        territories={d.deal_id: d.territory for d in open_deals},
        lead_model=lead_model,
        leads=score_leads(lead_model, open_leads, now=as_of) if lead_model else None,
    )


async def score(
    session: AsyncSession, *, as_of: datetime, periods: Sequence[FiscalPeriod]
) -> Scoring:
    """Raises NoClosedDeals when no deal has closed: there is nothing to learn from."""
    rows = await scores.deal_rows(session)
    primary = primary_territories(
        await knowledge.newest_ruleset(session), await scores.rep_emails(session)
    )
    deals = [
        replace(r.facts, territory=deal_territory(r.account_territory, r.facts.owner_id, primary))
        for r in rows
    ]
    leads = await scores.lead_facts(session)
    scored = await asyncio.to_thread(_fit_and_score, deals, leads, as_of=as_of, periods=periods)
    return replace(scored, primary_territories=primary, facts=deals)


async def publish(
    session: AsyncSession,
    scoring: Scoring,
    *,
    run_id: UUID,
    as_of: datetime,
    topics: Topics,
    threshold: float,
) -> Published:
    """Keep every score of this run; publish those that moved materially (and first ones)."""
    deals = scoring.deals
    deal_flags = to_publish(
        deals.deal_ids,
        [deals.win, deals.close_in["quarter"]],
        await scores.published_deal_scores(session),
        threshold=threshold,
    )
    close_in = {f"close_in_{kind}": v.tolist() for kind, v in deals.close_in.items()}
    await scores.save_scores(
        session,
        scores.DEAL_SCORES,
        ScoreRows(
            deals.deal_ids,
            {"win_probability": deals.win.tolist(), **close_in},
            deals.reasons,
            deal_flags,
        ),
        run_id=run_id,
        scored_at=as_of,
        model=scoring.deal_model.name,
        model_version=str(run_id),
    )
    events = [
        Envelope.of(
            "deal.scored",
            DealScored(
                deal_id=deal_id,
                win_probability=round(float(deals.win[i]), 6),
                close_in_period_probability=round(float(deals.close_in["quarter"][i]), 6),
            ),
            source=SOURCE,
            time=as_of,
        )
        for i, deal_id in enumerate(deals.deal_ids)
        if deal_flags[i]
    ]
    lead_events = await _publish_leads(
        session, scoring, run_id=run_id, as_of=as_of, threshold=threshold
    )
    await add_to_outbox(session, [*events, *lead_events], topics=topics)
    return Published(deals=len(events), leads=len(lead_events))


async def _publish_leads(
    session: AsyncSession, scoring: Scoring, *, run_id: UUID, as_of: datetime, threshold: float
) -> list[Envelope]:
    leads, model = scoring.leads, scoring.lead_model
    if leads is None or model is None:
        return []
    published = await scores.published_lead_scores(session)
    flags = to_publish(
        leads.lead_ids,
        [leads.probability],
        {k: (v,) for k, v in published.items()},
        threshold=threshold,
    )
    await scores.save_scores(
        session,
        scores.LEAD_SCORES,
        ScoreRows(
            leads.lead_ids, {"probability": leads.probability.tolist()}, leads.reasons, flags
        ),
        run_id=run_id,
        scored_at=as_of,
        model=model.name,
        model_version=str(run_id),
    )
    return [
        Envelope.of(
            "lead.scored",
            LeadScored(
                lead_id=lead_id,
                probability=round(float(leads.probability[i]), 6),
                reasons=leads.reasons[i],
            ),
            source=SOURCE,
            time=as_of,
        )
        for i, lead_id in enumerate(leads.lead_ids)
        if flags[i]
    ]


def summary(scoring: Scoring, published: Published | None) -> dict[str, Any]:
    """What a run says about its scoring (the API shows it with the run)."""
    return {
        **scoring.models(),
        "deals_scored": len(scoring.deals.deal_ids),
        "leads_scored": len(scoring.leads.lead_ids) if scoring.leads else 0,
        "deal_scores_published": published.deals if published else 0,
        "lead_scores_published": published.leads if published else 0,
    }
