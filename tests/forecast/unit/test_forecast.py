"""Forecast arithmetic on small hand-computed pipelines."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from salesops_forecast.domain.forecast import (
    OpenDeal,
    Scope,
    WeightedDeal,
    forecast_figures,
    forecast_pipeline,
)
from salesops_forecast.domain.periods import current_periods
from salesops_forecast.domain.probabilities import StageProbabilities

pytestmark = pytest.mark.unit


def test_point_spread_and_intervals_of_two_deals() -> None:
    figures = forecast_figures(
        [WeightedDeal(Decimal(1000), Decimal("0.5")), WeightedDeal(Decimal(500), Decimal("0.8"))]
    )
    # point = 0.5·1000 + 0.8·500 = 900
    # σ² = 0.5·0.5·1000² + 0.8·0.2·500² = 250,000 + 40,000 = 290,000; σ = 538.5165
    assert figures.point == Decimal("900.00")
    assert (figures.lo80, figures.hi80) == (Decimal("209.84"), Decimal("1590.16"))  # ∓ 690.16
    # 900 − 1.96·538.5165 = −155.49: bookings cannot be negative.
    assert (figures.lo95, figures.hi95) == (Decimal("0.00"), Decimal("1955.49"))
    assert figures.deals == 2


def test_categories_split_at_70_and_40_percent() -> None:
    figures = forecast_figures(
        [
            WeightedDeal(Decimal(100), Decimal("0.7")),  # commit
            WeightedDeal(Decimal(20), Decimal("0.69")),  # best case
            WeightedDeal(Decimal(3), Decimal("0.4")),  # best case
            WeightedDeal(Decimal(4000), Decimal("0.39")),  # pipeline only
        ]
    )
    assert figures.commit == Decimal("100.00")
    assert figures.best_case == Decimal("123.00")
    assert figures.pipeline == Decimal("4123.00")


def test_a_sure_deal_has_no_spread_and_no_deal_forecasts_zero() -> None:
    sure = forecast_figures([WeightedDeal(Decimal(250), Decimal(1))])
    assert sure.point == sure.lo95 == sure.hi95 == Decimal("250.00")
    nothing = forecast_figures([])
    assert nothing.point == nothing.hi95 == nothing.pipeline == Decimal("0.00")


EAST_REP = UUID(int=1)
WEST_REP = UUID(int=2)
NOV_15 = date(2026, 11, 15)


def deal(
    amount: str,
    *,
    stage: str = "Proposal",
    owner: UUID | None = EAST_REP,
    team: str | None = "East",
    closes: date | None = NOV_15,
    currency: str | None = "USD",
) -> OpenDeal:
    return OpenDeal(uuid.uuid4(), stage, Decimal(amount), currency, owner, team, closes)


def test_the_pipeline_is_forecast_per_scope_and_period() -> None:
    probabilities = StageProbabilities(Decimal("0.5"), {"Proposal": Decimal("0.8")})
    deals = [
        deal("1000"),  # 800 in November and Q4
        deal("400", stage="Discovery", closes=None),  # undated: 200 in both periods
        deal("600", owner=WEST_REP, team="West", closes=date(2026, 12, 1)),  # 480 in Q4 only
        deal("9000", currency="EUR"),  # skipped until exchange rates exist
        deal("100", owner=None, team=None, closes=date(2027, 1, 2)),  # next quarter
    ]
    planned = forecast_pipeline(
        deals=deals,
        probabilities=probabilities,
        periods=current_periods(NOV_15, start_month=1),
        currency="usd",
    )
    points = {(f.period.name, f.scope): f.figures.point for f in planned}
    east, west, rep1 = Scope("team", "East"), Scope("team", "West"), Scope("rep", str(EAST_REP))
    company = Scope("company")
    assert points == {
        ("2026-11", company): Decimal("1000.00"),
        ("2026-11", east): Decimal("1000.00"),
        ("2026-11", west): Decimal("0.00"),
        ("2026-11", rep1): Decimal("1000.00"),
        ("2026-11", Scope("rep", str(WEST_REP))): Decimal("0.00"),
        ("2026-Q4", company): Decimal("1480.00"),
        ("2026-Q4", east): Decimal("1000.00"),
        ("2026-Q4", west): Decimal("480.00"),
        ("2026-Q4", rep1): Decimal("1000.00"),
        ("2026-Q4", Scope("rep", str(WEST_REP))): Decimal("480.00"),
    }
    assert planned[0].scope == company
    assert planned[0].skipped_other_currency == 1
    assert planned[0].figures.pipeline == Decimal("1400.00")
    assert planned[0].figures.deals == 2
