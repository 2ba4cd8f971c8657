"""Lead scoring on generated leads whose source and engagement decide their fate."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from salesops_forecast.domain.facts import LeadFacts
from salesops_forecast.domain.lead_scoring import (
    BASE_RATE,
    LEAD_MODEL,
    MIN_KNOWN_LEADS,
    fit_lead_model,
    score_leads,
)
from salesops_forecast.domain.learners import auc

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 16, tzinfo=UTC)
# The chance a lead becomes a won deal, by source: what the model must find.
WON_RATE = {"webinar": 0.6, "referral": 0.4, "web": 0.1, "purchased list": 0.03}


def leads(n: int, *, seed: int = 3, decided: bool = True) -> list[LeadFacts]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        source = rng.choice(list(WON_RATE))
        won = rng.random() < WON_RATE[source]
        converted = won or rng.random() < 0.5
        created = NOW - timedelta(days=rng.uniform(30, 300))
        out.append(
            LeadFacts(
                lead_id=uuid.UUID(int=rng.getrandbits(128)),
                lifecycle=("converted" if converted else "disqualified") if decided else "open",
                lead_source=source,
                country=rng.choice(("DE", "US", "FR")),
                employees=rng.randint(5, 5000),
                created_at=created,
                decided_at=created + timedelta(days=20) if decided else None,
                activities=rng.randint(0, 6),
                last_activity_at=created + timedelta(days=rng.uniform(0, 10)),
                deal_outcomes=(("won",) if won else ("lost",)) if converted and decided else (),
            )
        )
    return out


def test_open_leads_are_ranked_by_source_with_the_source_as_main_reason() -> None:
    history = leads(3000)
    model = fit_lead_model(history, now=NOW)
    assert model is not None
    assert model.name == LEAD_MODEL
    assert model.describe()["held_out_auc"] > 0.7
    fresh = leads(2000, seed=11)  # their outcomes, unknown to the model
    truth = np.asarray([float(lead.became_won_deal() or False) for lead in fresh])
    opened = [
        LeadFacts(**{**lead.__dict__, "lifecycle": "open", "deal_outcomes": ()}) for lead in fresh
    ]
    scores = score_leads(model, opened, now=NOW)
    assert (auc(truth, scores.probability) or 0) > 0.75
    for source, rate in WON_RATE.items():
        mine = [
            p
            for lead, p in zip(fresh, scores.probability, strict=True)
            if lead.lead_source == source
        ]
        assert abs(np.mean(mine) - rate) < 0.07, source
    webinar = next(i for i, lead in enumerate(fresh) if lead.lead_source == "webinar")
    assert scores.reasons[webinar][0].startswith("source webinar: ")
    assert "× the average odds" in scores.reasons[webinar][0]


def test_outcomes_known_only_for_decided_leads_whose_deals_closed() -> None:
    lead = LeadFacts(lead_id=uuid.uuid4(), lifecycle="converted", deal_outcomes=("open",))
    assert lead.became_won_deal() is None
    assert LeadFacts(lead_id=uuid.uuid4(), lifecycle="disqualified").became_won_deal() is False
    both = LeadFacts(lead_id=uuid.uuid4(), lifecycle="converted", deal_outcomes=("lost", "won"))
    assert both.became_won_deal() is True
    merged = LeadFacts(lead_id=uuid.uuid4(), lifecycle="open", merged=True)
    assert not merged.open


def test_with_few_known_outcomes_every_lead_gets_the_base_rate() -> None:
    history = leads(MIN_KNOWN_LEADS - 1)
    model = fit_lead_model(history, now=NOW)
    assert model is not None
    assert model.name == BASE_RATE
    won = sum(1 for lead in history if lead.became_won_deal())
    scores = score_leads(model, leads(5, seed=5, decided=False), now=NOW)
    assert np.allclose(scores.probability, (won + 1) / (MIN_KNOWN_LEADS - 1 + 2))
    assert scores.reasons[0][0].startswith(f"base rate: {won} of {MIN_KNOWN_LEADS - 1} leads")
    assert fit_lead_model(leads(5, decided=False), now=NOW) is None
