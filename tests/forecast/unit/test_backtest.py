"""The rolling-origin replay on deals whose right answer is known, and on the Maven sample's
weeks."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from salesops_cli.maven import DATA_DIR
from salesops_forecast.backtest.deals import DealTable, Flags, read_maven
from salesops_forecast.backtest.replay import methods, replay
from salesops_forecast.domain.pipeline_model import Array, days, periods_between

pytestmark = pytest.mark.unit


class EvenOdds:
    """A win model fake at the port: every open deal is a coin toss."""

    def __call__(
        self, deals: DealTable, *, train: Flags, score: Flags, as_of: np.datetime64
    ) -> Array:
        return np.full(int(score.sum()), 0.5)

    def describe(self) -> str:
        return "even odds"


def table(rows: list[tuple[str, date | None, date | None, bool, float]]) -> DealTable:
    n = len(rows)
    return DealTable(
        agent=np.array([r[0] for r in rows]),
        office=np.array(["East" if r[0] < "m" else "West" for r in rows]),
        product=np.full(n, "GTX"),
        sector=np.full(n, "retail"),
        engaged=days([r[1] for r in rows]),
        closed=days([r[2] for r in rows]),
        won=np.array([r[3] for r in rows]),
        value=np.array([r[4] if r[3] else 0.0 for r in rows]),
        list_price=np.full(n, 1000.0),
    )


def test_periods_are_calendar_months_and_weeks_from_monday() -> None:
    assert periods_between(date(2017, 1, 15), date(2017, 3, 2), "month") == [
        (date(2017, 1, 1), date(2017, 1, 31)),
        (date(2017, 2, 1), date(2017, 2, 28)),
        (date(2017, 3, 1), date(2017, 3, 31)),
    ]
    weeks = periods_between(date(2017, 3, 1), date(2017, 3, 13), "week")
    assert weeks == [
        (date(2017, 2, 27), date(2017, 3, 5)),
        (date(2017, 3, 6), date(2017, 3, 12)),
        (date(2017, 3, 13), date(2017, 3, 19)),
    ]


def test_deals_created_and_won_within_each_month_are_forecast_as_not_yet_created() -> None:
    # Every month two reps each win a 500 deal engaged on the 2nd and closed on the 10th:
    # nothing is open at a month's start, and history says 1,000 will come from new deals.
    rows = []
    for month in range(1, 9):
        for rep in ("ann", "zoe"):
            rows.append((rep, date(2017, month, 2), date(2017, month, 10), True, 500.0))
    result = replay(table(rows), kind="month", win_odds=EvenOdds())

    assert [result.periods[k][0].month for k in result.origins] == [4, 5, 6, 7, 8]
    actual = result.actuals()
    assert actual[:, 0].tolist() == [1000.0] * 5
    pipeline = result.method_forecasts("pipeline")
    assert pipeline[:, 0].tolist() == [1000.0] * 5  # company
    assert pipeline[:, 1:].tolist() == [[500.0] * 4] * 5  # East, West, ann, zoe
    # Exact history: every method right, so every blend is a weighted average of 1,000s.
    assert np.allclose(result.method_forecasts("blend"), actual, atol=1)
    for weights in result.company_weights:
        assert sum(weights.values()) == pytest.approx(1)


def test_open_deals_count_by_their_odds_and_closing_chances() -> None:
    # Each month Feb–Jun, ann wins 800 on a 1,000 list price and zoe loses, both within 5
    # days of engaging. Two more of ann's deals are engaged on May 30 and stay open.
    rows = []
    for month in range(2, 7):
        rows.append(("ann", date(2017, month, 3), date(2017, month, 8), True, 800.0))
        rows.append(("zoe", date(2017, month, 3), date(2017, month, 8), False, 0.0))
    rows += [("ann", date(2017, 5, 30), None, False, 0.0)] * 2
    result = replay(table(rows), kind="month", win_odds=EvenOdds())

    june = [result.periods[k][0] for k in result.origins].index(date(2017, 6, 1))
    pipeline = result.method_forecasts("pipeline")[june]
    # Kaplan–Meier over cycles of 5 days (8 closed) with the two open deals censored at 1.5
    # days (engaged at noon, seen at midnight): S(1.5) = 1, S(31.5) = floor 1/11, so each
    # closes in June with chance 10/11; the fake odds give 0.5; the amount is the list
    # price, what the sample says an open deal is worth. Not yet created: 800 in each of
    # Feb–May.
    open_part = 2 * 0.5 * (10 / 11) * 1000
    assert pipeline[0] == pytest.approx(800 + open_part)  # company
    ann = result.scopes.names.index(("rep", "ann"))
    zoe = result.scopes.names.index(("rep", "zoe"))
    assert pipeline[ann] == pytest.approx(800 + open_part)
    assert pipeline[zoe] == 0
    # The fixed-stage baseline counts every open deal at 0.4 of its list price.
    assert result.method_forecasts("stage_weighted")[june][0] == pytest.approx(800)


def test_open_deals_close_in_the_rhythm_of_past_months_at_the_same_place_in_the_quarter() -> None:
    # Ten 1,000 deals engaged on the 20th of each month Dec–May are open at the next month's
    # start and close on its 5th: all ten won in March (a quarter's third month), one in
    # each of January, February, April and May. May's ten are still open; zoe's win in
    # June makes June a scored month.
    rows = [("zoe", date(2017, 6, 2), date(2017, 6, 10), True, 500.0)]
    for month in range(1, 7):
        engaged = date(2017, month - 1, 20) if month > 1 else date(2016, 12, 20)
        wins = 10 if month == 3 else 1
        for i in range(10):
            closed = date(2017, month, 5) if month < 6 else None
            rows.append(("ann", engaged, closed, closed is not None and i < wins, 1000.0))
    result = replay(table(rows), kind="month", win_odds=EvenOdds())
    starts = [result.periods[k][0] for k in result.origins]
    pipeline = result.method_forecasts("pipeline")[:, 0]

    # Ten open deals × even odds × the Kaplan–Meier chance of closing within the month
    # (every cycle is shorter than a month: 1 − the floor 1 / (closed + open + 1)) × their
    # list price, × how much of the open list value past months at the same place in the
    # quarter won, against all past months.
    def expected(closed_before: int, same: float, overall: float) -> float:
        return 10 * 0.5 * (1 - 1 / (closed_before + 11)) * 1000 * same / overall

    # April, a first month: January won 1 of 10; Jan–Mar 12 of 30.
    assert pipeline[starts.index(date(2017, 4, 1))] == pytest.approx(expected(30, 0.1, 0.4))
    # May, a second month: February 1 of 10; Jan–Apr 13 of 40.
    assert pipeline[starts.index(date(2017, 5, 1))] == pytest.approx(expected(40, 0.1, 13 / 40))
    # June, a third month: March 10 of 10, Jan–May 14 of 50; the chance is capped at 1.
    assert expected(50, 1, 14 / 50) > 10_000
    assert pipeline[starts.index(date(2017, 6, 1))] == pytest.approx(10_000)


def test_not_yet_created_follows_the_quarter_rhythm_of_past_months() -> None:
    # Deals created and won within the month: 900 in each first month of a quarter, 100 in
    # the others, January to August.
    rows = []
    for month in range(1, 9):
        amount = 900.0 if month % 3 == 1 else 100.0
        rows.append(("ann", date(2017, month, 2), date(2017, month, 10), True, amount))
    result = replay(table(rows), kind="month", win_odds=EvenOdds())
    starts = [result.periods[k][0].month for k in result.origins]
    pipeline = result.method_forecasts("pipeline")[:, 0]
    assert dict(zip(starts, pipeline.tolist(), strict=True)) == pytest.approx(
        {4: 900.0, 5: 100.0, 6: 100.0, 7: 900.0, 8: 100.0}
    )


def test_a_weekly_replay_of_one_office_scores_every_method() -> None:
    deals = read_maven(DATA_DIR)
    east = deals.office == "East"
    subset = DealTable(*(getattr(deals, f)[east] for f in DealTable.__dataclass_fields__))
    result = replay(subset, kind="week", win_odds=EvenOdds())

    won = subset.won & ~np.isnat(subset.closed)
    first = result.periods[result.origins[0]][0]
    counted = won & (subset.closed >= np.datetime64(first, "D"))
    assert result.actuals()[:, 0].sum() == pytest.approx(subset.value[counted].sum())
    expected = {"blend", "pipeline", "auto_ets", "theta", "seasonal_run_rate", "naive", "mean_3"}
    assert expected <= set(methods(result))
    assert len(result.origins) > 30
    assert all(w and sum(w.values()) == pytest.approx(1) for w in result.company_weights)
    # Every scope is blended with the company's weights, as a service run weighs its scopes.
    for i, weights in enumerate(result.company_weights):
        weighted = sum(w * result.method_forecasts(m)[i] for m, w in weights.items())
        np.testing.assert_allclose(result.method_forecasts("blend")[i], weighted, rtol=1e-9)
    assert any(0 < w < 1 for w in result.company_weights[-1].values())


def test_no_origin_sees_the_bookings_it_is_scored_on() -> None:
    """Tripling what the last month booked changes that month's actual and nothing that was
    forecast at any origin, blend weights included (they come from earlier origins only)."""
    deals = read_maven(DATA_DIR)
    west = deals.office == "West"
    subset = DealTable(*(getattr(deals, f)[west] for f in DealTable.__dataclass_fields__))
    before = replay(subset, kind="month", win_odds=EvenOdds())
    last = np.datetime64(before.periods[before.origins[-1]][0], "D")
    late = subset.closed >= last
    changed = dataclasses.replace(subset, value=np.where(late, 3 * subset.value, subset.value))
    after = replay(changed, kind="month", win_odds=EvenOdds())

    assert after.actuals()[-1, 0] > before.actuals()[-1, 0]
    for method in methods(before):
        assert np.array_equal(after.method_forecasts(method), before.method_forecasts(method))
    assert after.company_weights == before.company_weights


def test_the_blend_rule_at_an_origin_is_chosen_without_later_actuals() -> None:
    """The blend's power and cut-off at each origin come from the origins before it (nested
    rolling origin): cutting what was booked from September on to a fifth changes the
    weights chosen later, and neither the rule, the weights nor any forecast at the origins
    up to September's."""
    deals = read_maven(DATA_DIR)
    west = deals.office == "West"
    subset = DealTable(*(getattr(deals, f)[west] for f in DealTable.__dataclass_fields__))
    before = replay(subset, kind="month", win_odds=EvenOdds())
    starts = [before.periods[k][0] for k in before.origins]
    september = starts.index(date(2017, 9, 1))
    late = subset.closed >= np.datetime64(starts[september], "D")
    cut = dataclasses.replace(subset, value=np.where(late, 0.2 * subset.value, subset.value))
    after = replay(cut, kind="month", win_odds=EvenOdds())

    assert not np.array_equal(after.actuals()[september:], before.actuals()[september:])
    kept = september + 1
    assert after.rules[:kept] == before.rules[:kept]
    assert after.company_weights[:kept] == before.company_weights[:kept]
    for method in methods(before):
        assert np.array_equal(
            after.method_forecasts(method)[:kept], before.method_forecasts(method)[:kept]
        )
    # Those later actuals do count once they are history.
    assert after.company_weights[kept:] != before.company_weights[kept:]
