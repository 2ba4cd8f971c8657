"""Lead scoring: each open lead's probability of becoming a won deal, with its main reasons.

Learned from the leads whose outcome is known: converted leads that became a won deal (1)
against disqualified leads and converted leads whose deals were all lost (0); converted
leads with a deal still open are left out until it closes. Inputs: lead source, industry,
country, size and revenue, activity logged (how many, how recently before the decision, or
before now for open leads) and how often the person came in again (merged duplicates). The
same calibrated logistic scorer as deals (domain/linear_scorer.py); with fewer than
MIN_KNOWN_LEADS known outcomes (or MIN_EACH_OUTCOME of either), every open lead gets the
base rate (won + 1) / (known + 2), and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from salesops_forecast.domain.facts import LeadFacts
from salesops_forecast.domain.features import (
    DAY,
    category_feature,
    log_count,
    log_days,
    number_feature,
)
from salesops_forecast.domain.learners import Floats, fit_logistic, fit_platt
from salesops_forecast.domain.linear_scorer import (
    Feature,
    LinearScorer,
    fit_scorer,
    held_out_rows,
)

MIN_KNOWN_LEADS = 30
MIN_EACH_OUTCOME = 5
LEAD_MODEL = "logistic_regression_platt"
BASE_RATE = "base_rate"

LEAD_FEATURES: tuple[Feature, ...] = (
    category_feature("lead_source", "source"),
    category_feature("industry", "industry"),
    category_feature("country", "country"),
    number_feature("employees", "{:,.0f} employees", "size unknown"),
    number_feature("revenue", "annual revenue {:,.0f}", "revenue unknown"),
    number_feature("activities", "{:.0f} activities logged", "no activity logged"),
    number_feature("activity_recency", "last activity {:.0f} days before", "no recent activity"),
    number_feature("duplicates", "came in {:.0f} more times", "came in once"),
)


def lead_columns(leads: Sequence[LeadFacts], now: datetime) -> dict[str, Any]:
    """Inputs as of the decision for decided leads, as of ``now`` for open ones."""
    cols: dict[str, list[Any]] = {f.name: [] for f in LEAD_FEATURES}
    for lead in leads:
        at = lead.decided_at if not lead.open and lead.decided_at else now
        last = lead.last_activity_at
        recency = (at - last).total_seconds() / DAY if last and last <= at else math.nan
        cols["lead_source"].append(lead.lead_source.lower() if lead.lead_source else None)
        cols["industry"].append(lead.industry.lower() if lead.industry else None)
        cols["country"].append(lead.country)
        cols["employees"].append(log_count(lead.employees))
        cols["revenue"].append(log_count(lead.annual_revenue))
        cols["activities"].append(log_count(lead.activities) if lead.activities else math.nan)
        cols["activity_recency"].append(log_days(max(recency, 0.0)))
        cols["duplicates"].append(log_count(lead.duplicates) if lead.duplicates else math.nan)
    numbers = {f.name for f in LEAD_FEATURES if f.kind == "number"}
    return {k: np.asarray(v, dtype=np.float64) if k in numbers else v for k, v in cols.items()}


@dataclass(frozen=True)
class LeadModel:
    name: str  # LEAD_MODEL or BASE_RATE
    known: int
    won: int
    scorer: LinearScorer | None = None
    why_fallback: str | None = None

    @property
    def base_rate(self) -> float:
        return (self.won + 1) / (self.known + 2)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "known_leads": self.known, "won": self.won}
        if self.scorer is not None:
            out.update(self.scorer.quality)
        if self.why_fallback:
            out["fallback_reason"] = self.why_fallback
        return out


@dataclass(frozen=True)
class LeadScores:
    lead_ids: list[Any]
    probability: Floats
    reasons: list[list[str]]


def fit_lead_model(leads: Sequence[LeadFacts], *, now: datetime) -> LeadModel | None:
    """None when no lead's outcome is known yet: there is nothing to score with."""
    labelled = [(lead, w) for lead in leads if (w := lead.became_won_deal()) is not None]
    if not labelled:
        return None
    known, won = len(labelled), sum(1 for _, w in labelled if w)
    if known < MIN_KNOWN_LEADS or min(won, known - won) < MIN_EACH_OUTCOME:
        why = (
            f"{known} leads with a known outcome ({won} became won deals): a model needs "
            f"{MIN_KNOWN_LEADS}, at least {MIN_EACH_OUTCOME} of each outcome"
        )
        return LeadModel(BASE_RATE, known, won, why_fallback=why)
    rows = [lead for lead, _ in labelled]
    outcome = np.asarray([float(w) for _, w in labelled])
    held_out = held_out_rows([lead.lead_id for lead in rows])
    if len(set(outcome[held_out])) < 2 or held_out.all():
        return LeadModel(BASE_RATE, known, won, why_fallback="too few leads to hold out")
    scorer = fit_scorer(
        LEAD_FEATURES,
        lead_columns(rows, now),
        outcome,
        np.ones(len(rows)),
        held_out,
        learn=fit_logistic,
        calibrate=fit_platt,
    )
    if scorer is None:
        why = "the model did not rank held-out leads better than chance"
        return LeadModel(BASE_RATE, known, won, why_fallback=why)
    return LeadModel(LEAD_MODEL, known, won, scorer=scorer)


def score_leads(model: LeadModel, leads: Sequence[LeadFacts], *, now: datetime) -> LeadScores:
    ids = [lead.lead_id for lead in leads]
    if model.scorer is None:
        said = [
            f"base rate: {model.won} of {model.known} leads with a known outcome became won "
            f"deals ({model.why_fallback})"
        ]
        return LeadScores(ids, np.full(len(leads), model.base_rate), [said] * len(leads))
    columns = lead_columns(leads, now)
    scored = model.scorer.score(columns)
    return LeadScores(ids, scored.probability, model.scorer.reasons(scored, columns))
