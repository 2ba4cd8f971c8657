"""Blend weights from backtests, and the pipeline model's lessons from history."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from salesops_forecast.domain.blend import (
    PRIOR,
    Backtest,
    Estimate,
    Origin,
    Rule,
    backtest_weights,
    blend,
    chosen_rule,
    out_of_sample_weights,
)
from salesops_forecast.domain.pipeline_model import (
    Bookings,
    close_within,
    days,
    not_yet_created,
)

pytestmark = pytest.mark.unit


def test_weights_are_inverse_squared_wape_over_methods_scored_often_enough() -> None:
    weights = backtest_weights(
        {
            # WAPE 10 %: 10 of 100 missed over two origins.
            "pipeline": Backtest([45, 45], [50, 50]),
            # WAPE 14 %.
            "auto_ets": Backtest([57, 57], [50, 50]),
            # One scored origin only: not trusted yet.
            "theta": Backtest([0, 50], [0, 50]),
        },
        fallback=["pipeline"],
    )
    # 1/0.14² and 1/0.1² = 100: the method with 1.4 times the error gets half the weight.
    inverse = {"auto_ets": 1 / 0.14**2, "pipeline": 100.0}
    total = sum(inverse.values())
    assert weights == pytest.approx({m: v / total for m, v in inverse.items()})


def test_methods_beyond_the_rules_cut_off_times_the_best_error_get_no_weight() -> None:
    weights = backtest_weights(
        {
            "seasonal_run_rate": Backtest([90, 110], [100, 100]),  # WAPE 10 %
            "auto_ets": Backtest([86, 114], [100, 100]),  # 14 %: kept
            "theta": Backtest([80, 116], [100, 100]),  # 18 %: trimmed
            "pipeline": Backtest([60, 140], [100, 100]),  # 40 %: trimmed
        },
        fallback=["pipeline"],
        rule=Rule(2, 1.5),
    )
    total = 1 / 0.1**2 + 1 / 0.14**2
    assert weights == pytest.approx(
        {
            "auto_ets": 1 / 0.14**2 / total,
            "seasonal_run_rate": 1 / 0.1**2 / total,
            "theta": 0.0,
            "pipeline": 0.0,
        }
    )
    # A trimmed method is shown with weight 0 next to its point, and adds nothing.
    estimates = [
        Estimate(m, p, 1.0)
        for m, p in [("auto_ets", 90.0), ("seasonal_run_rate", 110.0), ("pipeline", 500.0)]
    ]
    b = blend(estimates, weights)
    assert b.weights["pipeline"] == 0
    assert b.points["pipeline"] == 500.0
    assert b.point == pytest.approx(90 * weights["auto_ets"] + 110 * weights["seasonal_run_rate"])


def test_without_scored_methods_the_fallback_methods_share_the_weight() -> None:
    assert backtest_weights({"auto_ets": Backtest([], [])}, fallback=["pipeline"]) == {
        "pipeline": 1.0
    }
    both = backtest_weights({"auto_ets": Backtest([], [])}, fallback=["theta", "pipeline"])
    assert both == {"pipeline": 0.5, "theta": 0.5}


def test_a_perfect_method_is_floored_rather_than_given_everything() -> None:
    weights = backtest_weights(
        {"a": Backtest([50, 50], [50, 50]), "b": Backtest([48.75, 48.75], [50, 50])},
        fallback=["a"],
        rule=Rule(2, 1.5),
    )
    # a's WAPE 0 counts as 2 %, b's is 2.5 %: within 1.5 times, so b keeps a weight.
    assert weights["a"] == pytest.approx((1 / 0.02**2) / (1 / 0.02**2 + 1 / 0.025**2))


def test_blend_is_the_weighted_point_and_spread_of_the_methods_present() -> None:
    estimates = [Estimate("pipeline", 100.0, 10.0), Estimate("auto_ets", 200.0, 30.0)]
    b = blend(estimates, {"pipeline": 0.25, "auto_ets": 0.5, "theta": 0.25})
    # theta made no forecast here: the others' weights are renormalised to 1/3 and 2/3.
    assert b.weights == pytest.approx({"pipeline": 1 / 3, "auto_ets": 2 / 3})
    assert b.point == pytest.approx(100 / 3 + 400 / 3)
    assert b.sigma == pytest.approx(10 / 3 + 60 / 3)
    assert b.points == {"pipeline": 100.0, "auto_ets": 200.0}


def bookings(rows: list[tuple[date | None, date, float, int]]) -> Bookings:
    return Bookings(
        created=days([r[0] for r in rows]),
        closed=days([r[1] for r in rows]),
        amount=np.array([r[2] for r in rows]),
        group=np.array([r[3] for r in rows], dtype=np.intp),
    )


def test_not_yet_created_learns_what_came_from_deals_created_after_the_same_offset() -> None:
    b = bookings(
        [
            (date(2017, 1, 2), date(2017, 1, 20), 100.0, 0),  # created on day 1 of January
            (date(2017, 1, 12), date(2017, 1, 25), 40.0, 0),  # created 11 days in
            (date(2016, 12, 1), date(2017, 1, 5), 999.0, 0),  # already open at the start
            (date(2017, 2, 15), date(2017, 2, 20), 60.0, 1),  # 14 days into February
            (None, date(2017, 2, 21), 500.0, 1),  # no creation day: counts as old
        ]
    )
    months = [(date(2017, 1, 1), date(2017, 1, 31)), (date(2017, 2, 1), date(2017, 2, 28))]

    at_start = not_yet_created(b, past=months, offset=timedelta(0), groups=2)
    assert at_start.mean.tolist() == [70.0, 30.0]  # (140 + 0) / 2, (0 + 60) / 2
    assert at_start.periods == 2
    ten_days_in = not_yet_created(b, past=months, offset=timedelta(days=10), groups=2)
    assert ten_days_in.mean.tolist() == [20.0, 30.0]
    assert ten_days_in.sigma[0] == pytest.approx(np.std([40.0, 0.0], ddof=1))
    # One past period is not history enough.
    assert not_yet_created(b, past=months[:1], offset=timedelta(0), groups=2).mean.tolist() == [
        0.0,
        0.0,
    ]


def test_closing_chances_follow_kaplan_meier_survival_of_sales_cycles() -> None:
    # Cycles 10, 20, 30, 40 days; one deal still open at 25 days is censored there.
    cycles = np.array([10.0, 20.0, 30.0, 40.0])
    # S(10) = 4/5 = 0.8; S(20) = 0.8 · 3/4 = 0.6; S(30) = 0.6 · (1 − 1/2) = 0.3; S(40) = 0.
    chance = close_within(np.array([0.0, 15.0, 22.0]), 10, cycles, still_open=np.array([25.0]))
    assert chance[0] == pytest.approx(1 - 0.8)  # (S(0) − S(10)) / S(0)
    assert chance[1] == pytest.approx((0.8 - 0.6) / 0.8)  # (S(15) − S(25)) / S(15)
    assert chance[2] == pytest.approx((0.6 - 0.3) / 0.6)  # (S(22) − S(32)) / S(22)
    # Past every cycle, S is floored at 1/6: a deal that old has no chance left.
    assert close_within(np.array([50.0]), 10, cycles, still_open=np.array([25.0]))[0] == 0


def origins(actuals: list[float], good: list[float], poor: list[float]) -> list[Origin]:
    return [Origin({"good": g, "poor": p}, a) for a, g, p in zip(actuals, good, poor, strict=True)]


def test_the_rule_is_the_one_whose_blends_did_best_at_the_earlier_origins() -> None:
    # "poor" misses by 60 % at every origin, "good" by 10 %: every blend of both is worse
    # than "good" alone, so the nested replay picks the first rule that trims "poor".
    history = origins([100.0] * 5, [110, 90, 110, 90, 110], [160, 40, 160, 40, 160])
    rule = chosen_rule(history, fallback=["good", "poor"])
    assert rule == Rule(2, 1.25)
    weights, used = out_of_sample_weights(history, fallback=["good", "poor"])
    assert used == rule
    assert weights == {"good": 1.0, "poor": 0.0}


def test_the_prior_rule_holds_until_two_blends_are_scored() -> None:
    # Blends need two scored origins before them: with three origins only one is judged.
    history = origins([100.0] * 3, [110, 90, 110], [160, 40, 160])
    assert chosen_rule(history, fallback=["good"]) == PRIOR
    weights, _ = out_of_sample_weights(history, fallback=["good"])
    assert weights["poor"] > 0  # 1/WAPE², untrimmed
    assert chosen_rule(history[:1], fallback=["good"]) == PRIOR


def test_when_no_rule_does_better_the_untrimmed_prior_is_kept() -> None:
    # Equal errors of opposite signs: every rule weighs both equally, and ties go to the prior.
    history = origins([100.0] * 5, [110, 90, 110, 90, 110], [90, 110, 90, 110, 90])
    assert chosen_rule(history, fallback=["good"]) == PRIOR


def test_the_chosen_rule_changes_with_the_earlier_actuals_alone() -> None:
    """The same forecasts, other actuals at the earlier origins: another rule. And the
    choice for an origin is the same whatever is booked at and after it."""
    trimmed = origins([100.0] * 5, [110, 90, 110, 90, 110], [160, 40, 160, 40, 160])
    apart = origins([100.0] * 5, [110, 90, 110, 90, 110], [90, 110, 90, 110, 90])
    assert chosen_rule(trimmed, fallback=["good"]) != chosen_rule(apart, fallback=["good"])
    later = [*trimmed, Origin({"good": 100.0, "poor": 100.0}, 1e9)]
    assert chosen_rule(later[:5], fallback=["good"]) == chosen_rule(trimmed, fallback=["good"])
