"""The KPI math on facts built by hand: no database, values worked out in the comments."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from salesops_common.events import WorkingHours
from salesops_metrics.domain import deal_kpis, lead_kpis, plan_kpis, reducers
from salesops_metrics.domain.deal_kpis import DealFacts
from salesops_metrics.domain.facts import (
    AccountFact,
    AssignmentFact,
    Context,
    DealFact,
    ForecastFact,
    LeadFact,
    QuotaFact,
    RepFact,
    StageEntry,
    TouchFact,
)
from salesops_metrics.domain.kpis import GroupRow
from salesops_metrics.domain.lead_kpis import AssignmentFacts, LeadFacts
from salesops_metrics.domain.money import Rates
from salesops_metrics.domain.periods import ALL_TIME, Window
from salesops_metrics.domain.territories import territory_model

pytestmark = pytest.mark.unit
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
EAST, WEST = uuid.uuid4(), uuid.uuid4()
ACME = uuid.uuid4()
REPS = {
    EAST: RepFact(EAST, email="e@x.example", team="East", active=True, licensed_tools=("crm",)),
    WEST: RepFact(
        WEST, email="w@x.example", team="West", active=True, licensed_tools=("crm", "Dialer")
    ),
}


def context(window: Window = ALL_TIME, **changes: Any) -> Context:
    ruleset = {"territories": [{"id": "south", "members": [{"email": "W@x.example"}]}]}
    fields: dict[str, Any] = {
        "now": T0 + timedelta(days=200),
        "window": window,
        "rates": Rates("USD", {"EUR": Decimal("2")}),
        "reps": REPS,
        "accounts": {
            ACME: AccountFact(ACME, industry="Software", employees=300, territory_id="north")
        },
        "territories": territory_model(3, ruleset),
    }
    fields.update(changes)
    return Context(**fields)


def closed(outcome: str, owner: uuid.UUID, **fields: Any) -> DealFact:
    fields.setdefault("closed", T0)
    return DealFact(uuid.uuid4(), owner_id=owner, outcome=outcome, **fields)


def values(rows: list[GroupRow], key: str | None = None) -> dict[Any, float | None]:
    return {(r.group[key] if key else None): r.value.value for r in rows}


def test_win_rate_by_value_leaves_out_amounts_it_cannot_convert() -> None:
    facts = DealFacts(
        [
            closed("won", EAST, amount=Decimal("100"), currency="EUR"),  # 200 USD
            closed("lost", EAST, amount=Decimal("200")),  # no currency: USD
            closed("won", EAST, amount=Decimal("999"), currency="JPY"),  # no rate
            closed("won", EAST),  # no amount
        ]
    )
    row = deal_kpis.win_rate_by_value(context(), facts, None)[0].value
    assert (row.value, row.numerator, row.denominator, row.n) == (0.5, 200, 400, 2)
    assert deal_kpis.win_rate(context(), facts, None)[0].value.value == 0.75


def test_a_deal_is_in_its_accounts_territory_else_its_owners_primary_one() -> None:
    facts = DealFacts(
        [
            closed("won", EAST, account_id=ACME),  # north, through the account
            closed("lost", WEST, account_id=ACME),  # north too: the account wins
            closed("won", WEST),  # south: W is a member (e-mails compare case-blind)
            closed("won", EAST),  # no territory at all
        ]
    )
    rows = deal_kpis.win_rate(context(), facts, "territory")
    assert values(rows, "territory") == {"north": 0.5, "south": 1.0, None: 1.0}
    assert [r.group["territory"] for r in rows] == ["north", "south", None]  # unknown last
    segments = deal_kpis.win_rate(context(), facts, "segment")
    assert values(segments, "segment") == {"software/250-999": 0.5, None: 1.0}


def test_the_window_is_half_open_over_close_time() -> None:
    window = Window(T0, T0 + timedelta(days=1))
    facts = DealFacts(
        [
            closed("won", EAST, closed=T0),
            closed("lost", EAST, closed=T0 + timedelta(days=1)),  # the end is excluded
            closed("lost", EAST, closed=T0 - timedelta(seconds=1)),
        ]
    )
    row = deal_kpis.win_rate(context(window), facts, None)[0].value
    assert (row.value, row.n) == (1.0, 1)


def test_no_closed_deal_is_one_null_row_ungrouped_and_no_rows_grouped() -> None:
    assert deal_kpis.win_rate(context(), DealFacts(), None) == [GroupRow({}, reducers.share([]))]
    assert deal_kpis.win_rate(context(), DealFacts(), None)[0].value.value is None
    assert deal_kpis.win_rate(context(), DealFacts(), "team") == []


def test_stage_paths_drop_repeats_and_order_ties_by_event_id() -> None:
    deal = DealFact(uuid.uuid4(), owner_id=EAST, outcome="won")
    first, second = sorted([uuid.uuid4(), uuid.uuid4()], key=str)
    entries = [
        StageEntry(deal.id, "Won", T0 + timedelta(days=9), uuid.uuid4()),
        StageEntry(deal.id, "Demo", T0 + timedelta(days=1), second),
        StageEntry(deal.id, "Lead", T0, uuid.uuid4()),
        StageEntry(deal.id, "Lead", T0 + timedelta(days=1), first),  # same time, earlier id
        StageEntry(deal.id, "Demo", T0 + timedelta(days=2), uuid.uuid4()),  # a repeat
    ]
    assert [e.stage for e in deal_kpis.stage_path(entries)] == ["Lead", "Demo", "Won"]
    rows = deal_kpis.stage_conversion(context(), DealFacts([deal], {}, entries), None)
    moves = {(r.group["from_stage"], r.group["to_stage"]): r.value.value for r in rows}
    assert moves == {("Lead", "Demo"): 1.0, ("Demo", "Won"): 1.0}


def test_pipeline_value_sums_open_deals_by_stage_in_the_reporting_currency() -> None:
    facts = DealFacts(
        [
            DealFact(uuid.uuid4(), stage="Demo", amount=Decimal("10"), currency="EUR", created=T0),
            DealFact(uuid.uuid4(), stage="Demo", amount=Decimal("5"), created=T0),
            DealFact(uuid.uuid4(), stage="Lead", amount=Decimal("1"), created=T0),
            DealFact(uuid.uuid4(), stage="Demo", amount=Decimal("7"), created=T0, outcome="won"),
        ]
    )
    assert values(deal_kpis.pipeline_value(context(), facts, None), "stage") == {
        "Demo": 25.0,
        "Lead": 1.0,
    }


# --- leads ------------------------------------------------------------------------------------


def journey_facts() -> LeadFacts:
    """Three leads: touched after 90 minutes by the second rep it was given; touched by a rep
    it was never given; never assigned."""
    touched, elsewhere, queued = (LeadFact(uuid.uuid4(), created=T0, lead_source=s) for s in "ABC")
    a1 = AssignmentFact(uuid.uuid4(), touched.id, EAST, "north", T0 + timedelta(minutes=10), T0)
    a2 = AssignmentFact(
        uuid.uuid4(), touched.id, WEST, "south", T0 + timedelta(minutes=20), T0 + timedelta(hours=1)
    )
    a3 = AssignmentFact(uuid.uuid4(), elsewhere.id, EAST, None, T0 + timedelta(minutes=1), T0)
    a4 = AssignmentFact(uuid.uuid4(), queued.id, None, None, T0, T0)
    touches = [
        TouchFact(touched.id, WEST, T0 + timedelta(minutes=90)),
        TouchFact(touched.id, WEST, T0 + timedelta(minutes=200)),
        TouchFact(elsewhere.id, WEST, T0 + timedelta(minutes=5)),
    ]
    return LeadFacts([touched, elsewhere, queued], [a1, a2, a3, a4], touches)


def test_response_time_counts_only_assigned_reps_and_never_touched_is_unbounded() -> None:
    compute = lead_kpis.lead_response_median
    row = compute(context(), journey_facts(), None)[0].value
    # 90, inf, inf: the median is unbounded; one of three responded.
    assert (row.value, row.numerator, row.n) == (math.inf, 1, 3)
    by_rep = compute(context(), journey_facts(), "rep")
    # The lead's rep is its newest assignment's; "rep" of the unassigned one is unknown.
    assert values(by_rep, "rep") == {str(WEST): 90.0, str(EAST): math.inf, None: math.inf}


def test_speed_to_lead_is_the_first_assignment_to_a_rep() -> None:
    compute = lead_kpis.speed_to_lead_median
    row = compute(context(), journey_facts(), None)[0].value
    # 10 and 1 minutes, and never: sorted 1, 10, inf -> 10
    assert (row.value, row.numerator) == (10.0, 2)


def test_business_response_uses_the_responding_reps_hours_and_zone() -> None:
    tokyo = RepFact(
        WEST, time_zone="Asia/Tokyo", working_hours=WorkingHours(start="09:00", end="18:00")
    )
    monday_8am_tokyo = datetime(2026, 6, 7, 23, tzinfo=UTC)  # Sunday 23:00 UTC
    lead = LeadFact(uuid.uuid4(), created=monday_8am_tokyo)
    facts = LeadFacts(
        [lead],
        [AssignmentFact(uuid.uuid4(), lead.id, WEST, None, monday_8am_tokyo, monday_8am_tokyo)],
        [TouchFact(lead.id, WEST, monday_8am_tokyo + timedelta(hours=2))],
    )
    ctx = context(reps={WEST: tokyo})
    business = lead_kpis.lead_response_business_median
    assert business(ctx, facts, None)[0].value.value == 60.0  # 09:00-10:00 only
    within = lead_kpis.within_sla(ctx, facts, None)[0].value  # 120 > 60 default
    assert (within.value, within.numerator) == (0.0, 0)


def test_within_sla_uses_the_territorys_first_touch_minutes() -> None:
    ruleset = {"territories": [{"id": "south", "sla": {"first_touch_minutes": 100}}]}
    ctx = context(territories=territory_model(4, ruleset))
    row = lead_kpis.within_sla(ctx, journey_facts(), None)[0].value
    assert (row.numerator, row.denominator) == (1, 3)  # 90 minutes, in south


def test_a_lead_reaching_a_rep_counts_once_when_it_first_does() -> None:
    lead = uuid.uuid4()
    window = Window(T0, T0 + timedelta(days=1))
    facts = AssignmentFacts(
        [
            AssignmentFact(uuid.uuid4(), lead, None, None, T0 - timedelta(days=1), T0),
            AssignmentFact(uuid.uuid4(), lead, EAST, "north", T0, T0 + timedelta(seconds=1)),
            AssignmentFact(uuid.uuid4(), lead, WEST, "south", T0 + timedelta(hours=1), T0),
        ],
        breaches={(lead, EAST)},
    )
    assert lead_kpis.leads_assigned(context(window), facts, None)[0].value.value == 1
    rate = lead_kpis.sla_breach_rate(context(window), facts, "territory")
    assert values(rate, "territory") == {"north": 1.0, "south": 0.0}


# --- plans ------------------------------------------------------------------------------------


def test_adoption_pools_licensed_pairs_and_ignores_inactive_reps() -> None:
    gone = uuid.uuid4()
    reps = {**REPS, gone: RepFact(gone, active=False, licensed_tools=("crm",))}
    used = {(WEST, "dialer"), (gone, "crm"), (EAST, "email")}
    rows = plan_kpis.technology_adoption(context(reps=reps), used, "tool")
    assert values(rows, "tool") == {"crm": 0.0, "dialer": 1.0}
    pooled = plan_kpis.technology_adoption(context(reps=reps), used, None)[0].value
    assert (pooled.numerator, pooled.denominator) == (1, 3)


def test_adoption_counts_selling_reps_not_managers() -> None:
    boss, player, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    reps = {
        **REPS,
        # a manager licensed for the dialer and using it is still no rep of its adoption
        boss: RepFact(boss, active=True, role="manager", licensed_tools=("dialer",)),
        # a rep others report to sells: counted (the role says rep)
        player: RepFact(player, active=True, role="rep", licensed_tools=("dialer",)),
        unknown: RepFact(unknown, active=True, licensed_tools=("dialer",)),  # no role: a rep
    }
    reps[EAST] = RepFact(EAST, team="East", active=True, manager_id=player, role="rep")
    used = {(WEST, "dialer"), (boss, "dialer")}
    rows = plan_kpis.technology_adoption(context(reps=reps), used, "tool")
    dialer = next(r.value for r in rows if r.group == {"tool": "dialer"})
    assert (dialer.numerator, dialer.denominator) == (1, 3)  # WEST, player, unknown


def forecast(as_of: datetime, point: str, **scope: Any) -> ForecastFact:
    return ForecastFact(
        uuid.uuid4(),
        as_of,
        scope.get("period", "2026-Q3"),
        scope.get("kind", "company"),
        scope.get("id"),
        scope.get("currency", "USD"),
        Decimal(point),
    )


def test_forecast_accuracy_uses_the_latest_forecast_made_before_the_period() -> None:
    q3 = datetime(2026, 7, 1, tzinfo=UTC)
    forecasts = [
        forecast(q3 - timedelta(days=30), "100"),
        forecast(q3 - timedelta(days=1), "80"),
        forecast(q3, "1000"),  # as_of the first instant of the period: too late
        forecast(q3 - timedelta(days=1), "40", currency="EUR", kind="team", id="East"),
    ]
    won = [
        closed("won", EAST, closed=q3 + timedelta(days=5), amount=Decimal("60")),
        closed("won", WEST, closed=q3 + timedelta(days=6), amount=Decimal("40")),
        closed("won", WEST, closed=q3 + timedelta(days=95), amount=Decimal("500")),  # Q4
    ]
    company = plan_kpis.forecast_accuracy(
        plan_kpis.forecast_outcomes(context(), forecasts, won, None)
    )
    assert company[0].group == {"period": "2026-Q3"}
    assert company[0].value.value == pytest.approx(0.8)  # 1 - |100 - 80| / 100
    teams = plan_kpis.forecast_outcomes(context(), forecasts, won, "team")
    assert plan_kpis.forecast_accuracy(teams)[0].value.value == pytest.approx(1 - 20 / 60)
    assert plan_kpis.forecast_bias(teams)[0].value.value == pytest.approx(20 / 60)


def test_a_period_still_running_or_outside_the_window_is_not_judged() -> None:
    forecasts = [forecast(T0 - timedelta(days=60), "1", period="2026-Q4")]
    assert plan_kpis.forecast_outcomes(context(), forecasts, [], None) == []  # ends after now
    early = Window(None, datetime(2026, 9, 30, tzinfo=UTC))
    q3 = [forecast(T0 - timedelta(days=60), "1")]
    assert plan_kpis.forecast_outcomes(context(early), q3, [], None) == []
    assert len(plan_kpis.forecast_outcomes(context(), q3, [], None)) == 1


def test_coverage_counts_deals_expected_in_the_period_and_undated_ones_now() -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    quota = QuotaFact("2026-11", "team", "East", Decimal("100"), "USD")
    deals = [
        DealFact(
            uuid.uuid4(), owner_id=EAST, amount=Decimal("30"), expected_close=date(2026, 11, 30)
        ),
        DealFact(uuid.uuid4(), owner_id=EAST, amount=Decimal("20")),
        DealFact(
            uuid.uuid4(), owner_id=EAST, amount=Decimal("50"), expected_close=date(2026, 12, 1)
        ),
        DealFact(
            uuid.uuid4(), owner_id=WEST, amount=Decimal("70"), expected_close=date(2026, 11, 5)
        ),
    ]
    rows = plan_kpis.pipeline_coverage(context(now=now), [quota], deals, "team")
    assert rows[0].group == {"period": "2026-11", "team": "East"}
    assert (rows[0].value.value, rows[0].value.numerator) == (0.5, 50.0)
    assert plan_kpis.pipeline_coverage(context(now=now), [quota], deals, None) == []


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 10, 31, 12, tzinfo=UTC),  # the 31st: September ended 30.5 days ago
        datetime(2026, 10, 20, tzinfo=UTC),  # September ended within the 30 days
        datetime(2026, 10, 1, tzinfo=UTC),  # the first instant of October
    ],
)
def test_the_last_30_days_judge_the_latest_closed_month_and_quarter_whatever_the_date(
    now: datetime,
) -> None:
    sept, q3 = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    forecasts = [
        forecast(sept - timedelta(days=1), "100", period="2026-09"),
        forecast(sept - timedelta(days=40), "50", period="2026-08"),
        forecast(q3 - timedelta(days=1), "300", period="2026-Q3"),
    ]
    won = [closed("won", EAST, closed=sept + timedelta(days=3), amount=Decimal("80"))]
    last_30_days = Window(now - timedelta(days=30), now)
    rows = plan_kpis.forecast_accuracy(
        plan_kpis.forecast_outcomes(context(last_30_days, now=now), forecasts, won, None)
    )
    # September, and Q3 (July to September): 80 won against 100 and 300 forecast
    assert values(rows, "period") == {"2026-09": 0.75, "2026-Q3": pytest.approx(1 - 220 / 80)}


def test_a_month_that_ended_before_the_window_is_judged_only_as_the_latest_closed() -> None:
    now = datetime(2026, 11, 15, tzinfo=UTC)
    forecasts = [
        forecast(datetime(2026, 8, 25, tzinfo=UTC), "100", period="2026-09"),
        forecast(datetime(2026, 9, 25, tzinfo=UTC), "100", period="2026-10"),
    ]
    # the window of this month: October ended as it began, September before; explicit bounds
    # in the past judge the latest month closed by their end
    this_month = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    early_october = Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC))
    for window, judged in ((this_month, {"2026-10"}), (early_october, {"2026-09"})):
        outcomes = plan_kpis.forecast_outcomes(context(window, now=now), forecasts, [], None)
        assert {o.period.name for o in outcomes} == judged
    autumn = Window(datetime(2026, 9, 15, tzinfo=UTC), now)  # both ended within
    outcomes = plan_kpis.forecast_outcomes(context(autumn, now=now), forecasts, [], None)
    assert {o.period.name for o in outcomes} == {"2026-09", "2026-10"}


@pytest.mark.parametrize(
    "durations",
    [
        [],
        [3.0],
        [5.0, 1.0, 2.5, 2.5],
        [4.0, math.inf, 1.0],
        [math.inf, math.inf],
        [0.0, 7.0, math.inf, 2.0, math.inf, 9.5, 1.25],
    ],
)
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 1.0])
def test_a_quantile_of_sorted_durations_is_the_quantile_of_them(
    durations: list[float], q: float
) -> None:
    """The snapshot sorts each group's durations once and reads every percentile from them."""
    assert reducers.quantile_of_sorted(q)(sorted(durations)) == reducers.quantile(q)(durations)
