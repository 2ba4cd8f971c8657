"""Win rate and deal outcomes, pure."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from salesops_metrics.domain.deals import DealOutcome, Outcome, latest_outcome
from salesops_metrics.domain.kpis import KPIS, Snapshot, win_rate

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def reported(deal_id: UUID, outcome: Outcome, *, hours: int = 0) -> DealOutcome:
    return DealOutcome(
        deal_id=deal_id,
        outcome=outcome,
        amount=None,
        currency=None,
        owner_id=None,
        closed_at=None,
        event_time=T0 + timedelta(hours=hours),
    )


def outcomes_after(reports: Iterable[DealOutcome]) -> dict[UUID, DealOutcome]:
    """Reports in arrival order, kept the way the projection keeps them: one row per deal."""
    known: dict[UUID, DealOutcome] = {}
    for report in reports:
        known[report.deal_id] = latest_outcome(known.get(report.deal_id), report)
    return known


def rate_of(known: dict[UUID, DealOutcome]) -> float | int | None:
    outcomes = [o.outcome for o in known.values()]
    return win_rate(won=outcomes.count("won"), lost=outcomes.count("lost")).value


def test_three_won_and_one_lost_is_three_quarters() -> None:
    rate = win_rate(won=3, lost=1)
    assert rate.value == 0.75
    assert (rate.numerator, rate.denominator, rate.n) == (3, 4, 4)


def test_no_deal_with_an_outcome_means_no_win_rate_not_zero() -> None:
    rate = win_rate(won=0, lost=0)
    assert rate.value is None
    assert (rate.numerator, rate.denominator, rate.n) == (0, 0, 0)
    assert Snapshot().value("win_rate").value is None


def test_all_lost_is_a_rate_of_zero() -> None:
    assert win_rate(won=0, lost=2).value == 0


def test_a_deal_reported_won_twice_counts_once() -> None:
    deal, other = uuid.uuid4(), uuid.uuid4()
    known = outcomes_after(
        [reported(deal, "won"), reported(deal, "won", hours=1), reported(other, "lost")]
    )
    assert rate_of(known) == 0.5


def test_a_newer_loss_replaces_a_win() -> None:
    deal = uuid.uuid4()
    known = outcomes_after([reported(deal, "won"), reported(deal, "lost", hours=48)])
    assert known[deal].outcome == "lost"
    assert rate_of(known) == 0


def test_an_older_outcome_arriving_late_changes_nothing() -> None:
    deal = uuid.uuid4()
    newest = reported(deal, "lost", hours=48)
    known = outcomes_after([reported(deal, "won"), newest, reported(deal, "won", hours=24)])
    assert known[deal] is newest


def test_a_tie_goes_to_the_later_arrival() -> None:
    deal = uuid.uuid4()
    known = outcomes_after([reported(deal, "won"), reported(deal, "lost")])
    assert known[deal].outcome == "lost"


def test_every_kpi_has_a_definition_and_a_value() -> None:
    snap = Snapshot(deals_won=2, deals_lost=2, leads_assigned=5)
    for name, kpi in KPIS.items():
        assert kpi.definition
        assert snap.value(name).n >= 0
    assert snap.value("leads_assigned").value == 5
