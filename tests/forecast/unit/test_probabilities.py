"""Stage win probabilities learned from closed deals, shrunk toward the overall win rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesops_forecast.domain.probabilities import (
    NoClosedDeals,
    StageRecord,
    WinHistory,
    stage_probabilities,
)

pytestmark = pytest.mark.unit


def test_a_stage_with_little_history_leans_on_the_overall_win_rate() -> None:
    # 3 of 5 closed deals won (p̄ = 0.6); all 5 reached Discovery, the 3 winners Proposal.
    history = WinHistory(
        won=3,
        closed=5,
        by_stage={"Discovery": StageRecord(3, 5), "Proposal": StageRecord(3, 3)},
    )
    learned = stage_probabilities(history, ["Discovery", "Proposal", "Negotiation"])
    assert learned.overall == Decimal("0.6")
    assert learned.by_stage["Discovery"] == Decimal(9) / Decimal(15)  # (3 + 10·0.6) / (5 + 10)
    assert learned.by_stage["Proposal"] == Decimal(9) / Decimal(13)  # not 3/3 = 1
    assert learned.by_stage["Negotiation"] == Decimal("0.6")  # never reached by a closed deal


def test_a_stage_with_much_history_follows_its_own_record() -> None:
    history = WinHistory(won=100, closed=200, by_stage={"Contract": StageRecord(90, 100)})
    learned = stage_probabilities(history, ["Contract"])
    assert learned.by_stage["Contract"] == Decimal(95) / Decimal(110)  # (90 + 5) / (100 + 10)


def test_without_any_stage_history_every_stage_gets_the_overall_win_rate() -> None:
    learned = stage_probabilities(WinHistory(won=3, closed=4), ["Prospecting", "Engaging"])
    assert learned.by_stage == {"Engaging": Decimal("0.75"), "Prospecting": Decimal("0.75")}
    assert learned.of(None) == Decimal("0.75")
    assert learned.of("a stage no open deal is in") == Decimal("0.75")


def test_with_no_closed_deals_there_is_nothing_to_learn_from() -> None:
    with pytest.raises(NoClosedDeals):
        stage_probabilities(WinHistory(won=0, closed=0), ["Prospecting"])
