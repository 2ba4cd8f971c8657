"""KPI arithmetic, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from salesops_metrics.domain.kpis import KPIS, Snapshot, newer_outcome_wins, win_rate

pytestmark = pytest.mark.unit


def test_win_rate_is_won_over_closed() -> None:
    rate = win_rate(won=3, lost=1)
    assert rate.value == Decimal("0.75")
    assert (rate.numerator, rate.denominator, rate.n) == (3, 4, 4)


def test_no_closed_deal_means_no_win_rate_not_zero() -> None:
    assert win_rate(won=0, lost=0).value is None


def test_a_late_outcome_never_replaces_a_newer_one() -> None:
    now = datetime.now(UTC)
    assert newer_outcome_wins(now, now + timedelta(seconds=1))
    assert newer_outcome_wins(None, now)
    assert not newer_outcome_wins(now, now - timedelta(seconds=1))


def test_every_kpi_has_a_definition_and_a_value() -> None:
    snap = Snapshot(won=2, lost=2, leads_assigned=5, events_by_type={})
    for name, kpi in KPIS.items():
        assert kpi.definition
        assert snap.value(name).n >= 0
