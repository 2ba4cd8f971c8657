"""Every KPI from events, over REST and on /metrics, against the real PostgreSQL and broker.

One metrics service for the module (``shared_metrics``); each test keeps to a year of its
own (explicit windows) and to teams, tools and territories named with the module's tag, so the
tests do not see each other's data. Expected values are worked out by hand in each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from salesops_common.envelope import Envelope
from salesops_metrics.testing import account as account_event
from salesops_metrics.testing import (
    activity,
    assigned,
    breached,
    deal,
    forecast,
    hours,
    lead,
    merged,
    rep,
    ruleset,
    territory_of,
)
from tests.metrics.support import (
    ADMIN,
    applied_total,
    by_group,
    kpi,
    one,
    publish_all,
)
from tests.support import AUTH, Isolation, eventually

pytestmark = pytest.mark.integration
TAG = uuid.uuid4().hex[:6]
SOUTH, FAST, NORTH = f"south-{TAG}", f"fast-{TAG}", f"north-{TAG}"
B_EMAIL = f"b-{TAG}@x.example"


def year(y: int) -> tuple[datetime, datetime]:
    return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)


def at(y: int, m: int, d: int, h: int = 12, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=UTC)


async def put_on_topics(
    client: httpx.AsyncClient, iso: Isolation, events: Sequence[Envelope]
) -> None:
    """Publish and wait until metrics has applied every one of them."""
    before = await applied_total(client)
    await publish_all(iso, events)

    async def done() -> bool:
        return await applied_total(client) >= before + len({e.id for e in events})

    await eventually(done, within=60, interval=0.2)


@pytest.fixture(scope="module")
async def metrics(shared_metrics: httpx.AsyncClient, module_iso: Isolation) -> httpx.AsyncClient:
    """The module's service, with the territory model every test reads: south (rep B by
    e-mail) and fast (a 40-minute first-touch SLA)."""
    territories = [
        {"id": SOUTH, "members": [{"email": B_EMAIL}]},
        {"id": FAST, "sla": {"first_touch_minutes": 40}},
    ]
    await put_on_topics(shared_metrics, module_iso, [ruleset(at(2010, 1, 1), 1, territories)])
    return shared_metrics


def closed_deal(
    owner: uuid.UUID,
    *,
    outcome: str,
    created: datetime,
    closed: datetime,
    amount: float = 1000,
    account_id: uuid.UUID | None = None,
) -> list[Envelope]:
    deal_id = uuid.uuid4()
    fields: dict[str, Any] = {"owner_id": owner, "amount": amount, "currency": "USD"}
    if account_id:
        fields["account_id"] = account_id
    return [
        deal(created, deal_id=deal_id, created_at=created, stage="Proposal", **fields),
        deal(closed, deal_id=deal_id, verb=outcome, stage=outcome.title(), closed_at=closed),
    ]


async def test_win_rate_by_count_and_value_by_team_territory_manager_and_segment(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2015)
    east, west, manager = f"East-{TAG}", f"West-{TAG}", uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    x, y = uuid.uuid4(), uuid.uuid4()
    reopened, removed = uuid.uuid4(), uuid.uuid4()
    events = [
        rep(at(2014, 1, 1), rep_id=a, team=east, manager_id=manager, active=True),
        rep(at(2014, 1, 1), rep_id=b, team=west, email=B_EMAIL, active=True),
        account_event(at(2014, 1, 1), account_id=x, industry="Software", employees=120),
        account_event(at(2014, 1, 1), account_id=y, industry="retail", employees=20),
        territory_of(at(2014, 1, 2), account_id=x, territory=NORTH),
        *closed_deal(a, outcome="won", created=at(2015, 2, 1), closed=at(2015, 3, 1), account_id=x),
        *closed_deal(
            a,
            outcome="lost",
            created=at(2015, 2, 1),
            closed=at(2015, 4, 1),
            amount=3000,
            account_id=x,
        ),
        *closed_deal(
            b,
            outcome="won",
            created=at(2015, 2, 1),
            closed=at(2015, 5, 1),
            amount=500,
            account_id=y,
        ),
        *closed_deal(b, outcome="won", created=at(2015, 2, 1), closed=at(2015, 6, 1), amount=500),
        *closed_deal(b, outcome="lost", created=at(2015, 2, 1), closed=at(2016, 2, 1)),  # later
        deal(at(2015, 2, 1), deal_id=reopened, owner_id=a, stage="Proposal", amount=1),
        deal(at(2015, 7, 1), deal_id=reopened, verb="won", stage="Won"),
        deal(at(2015, 7, 5), deal_id=reopened, verb="stage_changed", stage="Negotiation"),
        deal(at(2015, 2, 1), deal_id=removed, owner_id=a, stage="Proposal", amount=1),
        deal(at(2015, 8, 1), deal_id=removed, verb="lost", stage="Lost"),
        deal(at(2015, 8, 2), deal_id=removed, verb="deleted"),
    ]
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    assert one(await kpi(metrics, "win_rate", **window)) == {
        "group": {},
        "value": 0.75,
        "numerator": 3,
        "denominator": 4,
        "n": 4,
    }
    value = one(await kpi(metrics, "win_rate_by_value", **window))
    assert (value["value"], value["numerator"], value["denominator"]) == (0.4, 2000, 5000)
    assert one(await kpi(metrics, "deals_won", **window))["value"] == 3
    assert one(await kpi(metrics, "deals_lost", **window))["value"] == 1
    teams = by_group(await kpi(metrics, "win_rate", group_by="team", **window), "team")
    assert {t: v["value"] for t, v in teams.items()} == {east: 0.5, west: 1.0}
    territories = by_group(
        await kpi(metrics, "win_rate", group_by="territory", **window), "territory"
    )
    # B's deal on account Y (no territory) and B's deal with no account: B's primary territory.
    assert {t: v["value"] for t, v in territories.items()} == {NORTH: 0.5, SOUTH: 1.0}
    managers = by_group(await kpi(metrics, "win_rate", group_by="manager", **window), "manager")
    assert {m: v["n"] for m, v in managers.items()} == {str(manager): 2, None: 2}
    segments = by_group(await kpi(metrics, "win_rate", group_by="segment", **window), "segment")
    assert {s: v["value"] for s, v in segments.items()} == {
        "software/50-249": 0.5,
        "retail/1-49": 1.0,
        None: 1.0,
    }
    reps = by_group(await kpi(metrics, "win_rate", group_by="rep", **window), "rep")
    assert {r: v["value"] for r, v in reps.items()} == {str(a): 0.5, str(b): 1.0}
    scrape = (await metrics.get("/metrics")).text  # the module's gauges are over all time
    assert f'salesops_metrics_win_rate_ratio{{team="{east}"}} 0.5' in scrape
    assert f'salesops_metrics_win_rate_ratio{{territory="{NORTH}"}} 0.5' in scrape
    assert f'rep="{a}"' not in scrape  # no rep label unless the setting allows it


async def test_sales_cycle_mean_median_and_p90_over_won_deals(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2011)
    owner = uuid.uuid4()
    created = at(2011, 3, 1)
    events = [rep(at(2010, 6, 1), rep_id=owner, team=f"Cycle-{TAG}")]
    for cycle in (1, 2, 3, 4, 10):
        events += closed_deal(
            owner, outcome="won", created=created, closed=created + timedelta(days=cycle)
        )
    events += closed_deal(owner, outcome="lost", created=created, closed=at(2011, 4, 1))
    no_creation = uuid.uuid4()  # won, but its creation was never reported: left out
    events.append(deal(at(2011, 5, 1), deal_id=no_creation, verb="won", owner_id=owner))
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    mean = one(await kpi(metrics, "sales_cycle_mean", **window))
    assert (mean["value"], mean["numerator"], mean["n"]) == (4.0, 20.0, 5)
    assert one(await kpi(metrics, "sales_cycle_median", **window))["value"] == 3.0
    # sorted 1, 2, 3, 4, 10: position 0.9 * 4 = 3.6, so 4 + 0.6 * (10 - 4)
    assert one(await kpi(metrics, "sales_cycle_p90", **window))["value"] == pytest.approx(7.6)
    teams = await kpi(metrics, "sales_cycle_median", group_by="team", **window)
    assert teams == [
        {"group": {"team": f"Cycle-{TAG}"}, "value": 3.0, "numerator": 5, "denominator": 5, "n": 5}
    ]


async def test_lead_response_speed_to_lead_sla_share_and_conversion(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 7, 1, tzinfo=UTC)
    r, other = uuid.uuid4(), uuid.uuid4()
    l1, l2, l3, l4, l5, l6, l7 = (uuid.uuid4() for _ in range(7))
    web, event_source = f"Web-{TAG}", f"Event-{TAG}"
    monday = datetime(2021, 6, 7, 14, tzinfo=UTC)  # 10:00 in New York (EDT)
    friday_4pm = datetime(2021, 6, 11, 20, tzinfo=UTC)
    minute = timedelta(minutes=1)
    events = [
        rep(at(2021, 1, 1), rep_id=r, time_zone="America/New_York", working_hours=hours()),
        rep(at(2021, 1, 1), rep_id=other),
        # L1: touched after 30 minutes, converted.
        lead(monday, lead_id=l1, created_at=monday, lead_source=web),
        assigned(monday + 5 * minute, lead_id=l1, rep_id=r),
        activity(monday + 30 * minute, rep_id=r, lead_id=l1),
        lead(monday + 60 * minute, lead_id=l1, verb="converted"),
        # L2: Friday 16:00 to Monday 10:00 New York: 3,960 minutes, 120 of them working.
        lead(friday_4pm, lead_id=l2, created_at=friday_4pm, lead_source=web),
        assigned(friday_4pm + minute, lead_id=l2, rep_id=r),
        activity(datetime(2021, 6, 14, 14, tzinfo=UTC), rep_id=r, lead_id=l2, kind="email"),
        deal(at(2021, 6, 20), deal_id=uuid.uuid4(), lead_id=l2, owner_id=r),
        # L3: 45 minutes in territory fast (SLA 40).
        lead(monday + timedelta(days=1), lead_id=l3, lead_source=event_source),
        assigned(monday + timedelta(days=1) + 2 * minute, lead_id=l3, rep_id=r, territory=FAST),
        activity(monday + timedelta(days=1, minutes=45), rep_id=r, lead_id=l3),
        # L4: only an inbound call from its rep and an outbound one from a rep not assigned.
        lead(monday + timedelta(days=2), lead_id=l4, lead_source=event_source),
        assigned(monday + timedelta(days=2) + 3 * minute, lead_id=l4, rep_id=r),
        activity(monday + timedelta(days=2, minutes=7), rep_id=r, lead_id=l4, direction="inbound"),
        activity(monday + timedelta(days=2, minutes=9), rep_id=other, lead_id=l4),
        # L5: only ever in the fallback queue.
        lead(monday + timedelta(days=3), lead_id=l5, lead_source=event_source),
        assigned(monday + timedelta(days=3) + 4 * minute, lead_id=l5, rep_id=None),
        activity(monday + timedelta(days=3, minutes=30), rep_id=r, lead_id=l5),
        # L6 merged into L1 by the CRM, L7 deleted: neither counts.
        lead(monday, lead_id=l6, lead_source=web),
        merged(monday + minute, lead_id=l6, into=l1, rule="crm_merge"),
        lead(monday, lead_id=l7, lead_source=web),
        lead(monday + minute, lead_id=l7, verb="deleted"),
    ]
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    median = one(await kpi(metrics, "lead_response_median", **window))
    assert median == {"group": {}, "value": 3960.0, "numerator": 3, "denominator": 5, "n": 5}
    # Two of five never touched: the 90th percentile is among them, so unbounded (null).
    assert one(await kpi(metrics, "lead_response_p90", **window))["value"] is None
    assert one(await kpi(metrics, "lead_response_business_median", **window))["value"] == 120.0
    within = one(await kpi(metrics, "lead_response_within_sla", **window))
    assert (within["value"], within["numerator"], within["denominator"]) == (0.2, 1, 5)
    speed = one(await kpi(metrics, "speed_to_lead_median", **window))
    assert (speed["value"], speed["numerator"], speed["n"]) == (3.0, 4, 5)
    conversion = by_group(
        await kpi(metrics, "lead_to_deal_conversion", group_by="source", **window), "source"
    )
    assert {s: (v["numerator"], v["n"]) for s, v in conversion.items()} == {
        web: (2, 2),
        event_source: (0, 3),
    }
    fast = by_group(
        await kpi(metrics, "lead_response_median", group_by="territory", **window), "territory"
    )
    assert fast[FAST]["value"] == 45.0


async def test_technology_adoption_per_tool_among_active_licensed_selling_reps(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2018)
    crm, mail, team = f"crm-{TAG}", f"mail-{TAG}", f"Tools-{TAG}"
    r1, r2, r3, boss = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        rep(at(2017, 1, 1), rep_id=boss, active=True, team=team, licensed_tools=[crm]),
        rep(at(2017, 2, 1), rep_id=boss, verb="updated", role="manager"),  # sells no more
        activity(at(2018, 3, 4), rep_id=boss, tool=crm),  # a manager: not counted
        rep(at(2017, 1, 1), rep_id=r1, active=True, team=team, licensed_tools=[crm, mail]),
        rep(at(2017, 1, 1), rep_id=r2, active=True, team=team, licensed_tools=[crm]),
        rep(at(2017, 1, 1), rep_id=r3, active=True, team=team, licensed_tools=[crm]),
        rep(at(2017, 6, 1), rep_id=r3, verb="updated", active=False),  # left
        activity(at(2018, 3, 1), rep_id=r1, tool=crm.upper()),
        activity(at(2018, 3, 2), rep_id=r2, tool=mail),  # not licensed: not counted
        activity(at(2017, 12, 1), rep_id=r1, tool=mail),  # before the window
        activity(at(2018, 3, 3), rep_id=r3, tool=crm),  # inactive
    ]
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    tools = by_group(await kpi(metrics, "technology_adoption", group_by="tool", **window), "tool")
    assert (tools[crm]["value"], tools[crm]["numerator"], tools[crm]["n"]) == (0.5, 1, 2)
    assert (tools[mail]["value"], tools[mail]["n"]) == (0.0, 1)
    teams = by_group(await kpi(metrics, "technology_adoption", group_by="team", **window), "team")
    assert (teams[team]["numerator"], teams[team]["denominator"]) == (1, 3)
    scrape = (await metrics.get("/metrics")).text
    assert f'salesops_metrics_technology_adoption_ratio{{tool="{crm}"}}' in scrape


async def test_sla_breach_rate_per_assignment_and_leads_assigned_once(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2019)
    s1, s2 = uuid.uuid4(), uuid.uuid4()
    la, lb, lc, ld = (uuid.uuid4() for _ in range(4))
    territory = f"terr-{TAG}"
    events = [
        assigned(at(2019, 2, 1), lead_id=la, rep_id=s1, territory=territory),
        breached(at(2019, 2, 1, 13), lead_id=la, rep_id=s1, territory=territory),
        assigned(at(2019, 2, 1, 13), lead_id=la, rep_id=s2, territory=territory, again=True),
        assigned(at(2019, 3, 1), lead_id=lb, rep_id=s1, territory=territory),
        assigned(at(2019, 4, 1), lead_id=lc, rep_id=None),  # the queue
        assigned(at(2018, 12, 31), lead_id=ld, rep_id=s2),  # first reached a rep in 2018
        assigned(at(2019, 1, 5), lead_id=ld, rep_id=s1, again=True),
    ]
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    rate = one(await kpi(metrics, "sla_breach_rate", **window))
    assert (rate["value"], rate["numerator"], rate["denominator"]) == (0.25, 1, 4)
    per_rep = by_group(await kpi(metrics, "sla_breach_rate", group_by="rep", **window), "rep")
    assert {r: (v["numerator"], v["n"]) for r, v in per_rep.items()} == {
        str(s1): (1, 3),
        str(s2): (0, 1),
    }
    assert one(await kpi(metrics, "leads_assigned", **window))["value"] == 2
    places = by_group(
        await kpi(metrics, "leads_assigned", group_by="territory", **window), "territory"
    )
    assert places[territory]["value"] == 2


async def test_stage_conversion_pipeline_by_stage_and_deal_conversion(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2014)
    owner, team = uuid.uuid4(), f"Stages-{TAG}"
    d1, d2, d3, d4, d5 = (uuid.uuid4() for _ in range(5))

    def opened(deal_id: uuid.UUID, day: int, amount: int) -> Envelope:
        return deal(
            at(2014, 1, day), deal_id=deal_id, owner_id=owner, stage="Prospecting", amount=amount
        )

    def moved(deal_id: uuid.UUID, day: int, stage: str, verb: str = "stage_changed") -> Envelope:
        return deal(at(2014, 1, day), deal_id=deal_id, verb=verb, stage=stage)

    events = [
        rep(at(2013, 1, 1), rep_id=owner, team=team),
        opened(d1, 1, 10), moved(d1, 10, "Qualification"), moved(d1, 25, "Won", "won"),
        opened(d2, 2, 20), moved(d2, 11, "Qualification"), moved(d2, 26, "Lost", "lost"),
        opened(d3, 3, 100), moved(d3, 12, "Qualification"),
        opened(d4, 4, 50), moved(d4, 20, "Prospecting", "updated"),  # no new entry
        opened(d5, 5, 999), deal(at(2014, 1, 6), deal_id=d5, verb="deleted"),
    ]  # fmt: skip
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    stages = {
        (v["group"]["from_stage"], v["group"]["to_stage"]): (v["numerator"], v["denominator"])
        for v in await kpi(metrics, "stage_conversion", group_by="team", **window)
        if v["group"]["team"] == team
    }
    assert stages == {
        ("Prospecting", "Qualification"): (3, 4),
        ("Qualification", "Won"): (1, 3),
        ("Qualification", "Lost"): (1, 3),
    }
    pipeline = {
        v["group"]["stage"]: v["value"]
        for v in await kpi(metrics, "pipeline_value", group_by="team", **window)
        if v["group"]["team"] == team
    }
    assert pipeline == {"Qualification": 100.0, "Prospecting": 50.0}
    conversion = by_group(await kpi(metrics, "deal_conversion", group_by="team", **window), "team")
    assert (conversion[team]["numerator"], conversion[team]["n"]) == (1, 4)


async def test_forecast_accuracy_wape_and_bias_use_the_last_forecast_before_the_period(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2013)
    east, west = f"FE-{TAG}", f"FW-{TAG}"
    e, w = uuid.uuid4(), uuid.uuid4()
    events = [
        rep(at(2012, 1, 1), rep_id=e, team=east),
        rep(at(2012, 1, 1), rep_id=w, team=west),
        *closed_deal(e, outcome="won", created=at(2013, 5, 1), closed=at(2013, 8, 1), amount=700),
        *closed_deal(w, outcome="won", created=at(2013, 5, 1), closed=at(2013, 9, 10), amount=300),
        *closed_deal(e, outcome="won", created=at(2013, 5, 1), closed=at(2013, 10, 1), amount=999),
        forecast(at(2013, 6, 15), period="2013-Q3", point="1000"),
        forecast(at(2013, 6, 30), period="2013-Q3", point="1200"),  # the latest before Q3
        forecast(at(2013, 7, 2), period="2013-Q3", point="5000"),  # made during Q3: not used
        forecast(at(2013, 6, 20), period="2013-Q3", point="600", kind="team", scope_id=east),
        forecast(at(2013, 6, 20), period="2013-Q3", point="400", kind="team", scope_id=west),
    ]
    await put_on_topics(metrics, module_iso, events)

    window = {"start": start, "end": end}
    company = one(await kpi(metrics, "forecast_accuracy", **window))
    assert company["group"] == {"period": "2013-Q3"}
    assert (company["value"], company["numerator"], company["denominator"]) == (0.8, 200, 1000)
    teams = by_group(await kpi(metrics, "forecast_accuracy", group_by="team", **window), "team")
    assert teams[east]["value"] == pytest.approx(1 - 100 / 700)
    assert teams[west]["value"] == pytest.approx(1 - 100 / 300)
    wape = one(await kpi(metrics, "forecast_wape", group_by="team", **window))
    assert wape == {
        "group": {"period": "2013-Q3", "scope": "team"},
        "value": 0.2,
        "numerator": 200,
        "denominator": 1000,
        "n": 2,
    }
    assert one(await kpi(metrics, "forecast_bias", group_by="team", **window))["value"] == 0
    assert one(await kpi(metrics, "forecast_bias", **window))["value"] == pytest.approx(0.2)


async def test_pipeline_coverage_against_a_quota_in_the_reporting_currency(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    team, owner = f"Cov-{TAG}", uuid.uuid4()
    quota = {"period": "2026-Q4", "scope": {"kind": "team", "id": team}, "amount": "1000"}
    later = {"period": "2027-Q1", "scope": {"kind": "team", "id": team}, "amount": "5"}
    refused = await metrics.put("/v1/quotas", json={"quotas": [quota]}, headers=AUTH)
    assert refused.status_code == 401  # quotas need the admin token
    saved = await metrics.put("/v1/quotas", json={"quotas": [quota, later]}, headers=ADMIN)
    assert saved.status_code == 200, saved.text

    def open_deal(amount: int, **fields: Any) -> Envelope:
        return deal(at(2026, 10, 1), deal_id=uuid.uuid4(), owner_id=owner, amount=amount, **fields)

    events = [
        rep(at(2026, 1, 1), rep_id=owner, team=team),
        open_deal(300, expected_close_date="2026-11-15"),
        open_deal(200),  # undated: counts in the period that contains now
        open_deal(400, expected_close_date="2027-01-10"),  # next quarter
        open_deal(100, expected_close_date="2026-12-01", currency="EUR"),
        *closed_deal(owner, outcome="won", created=at(2026, 10, 1), closed=at(2026, 11, 1)),
    ]
    await put_on_topics(metrics, module_iso, events)

    coverage = one(await kpi(metrics, "pipeline_coverage", group_by="team", window="quarter"))
    assert coverage["group"] == {"period": "2026-Q4", "team": team}
    assert (coverage["value"], coverage["numerator"], coverage["n"]) == (0.5, 500, 2)
    rates = await metrics.put("/v1/exchange-rates", json={"rates": {"EUR": "1.5"}}, headers=ADMIN)
    assert rates.status_code == 200, rates.text
    coverage = one(await kpi(metrics, "pipeline_coverage", group_by="team", window="quarter"))
    assert (coverage["value"], coverage["numerator"], coverage["n"]) == (0.65, 650, 3)
    listed = (await metrics.get("/v1/exchange-rates", headers=AUTH)).json()
    assert listed == {"currency": "USD", "rates": {"EUR": "1.5"}}


async def test_duplicate_rate_counts_ingest_merges_not_crm_merges(
    metrics: httpx.AsyncClient, module_iso: Isolation
) -> None:
    start, end = year(2012)
    ids = [uuid.uuid4() for _ in range(5)]
    events = [lead(at(2012, 5, 1 + i), lead_id=ids[i]) for i in range(3)]
    events += [
        merged(at(2012, 5, 4), lead_id=ids[3], into=ids[0]),
        merged(at(2012, 5, 5), lead_id=ids[4], into=ids[1], rule="crm_merge"),
    ]
    await put_on_topics(metrics, module_iso, events)

    rate = one(await kpi(metrics, "duplicate_rate", start=start, end=end))
    assert (rate["value"], rate["numerator"], rate["denominator"]) == (0.25, 1, 4)


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"kpi": "happiness"}, 404, "no KPI named"),
        ({"kpi": "win_rate", "window": "fortnight"}, 422, "unknown window"),
        ({"kpi": "win_rate", "window": "30d", "from": "2026-01-01"}, 422, "not both"),
        ({"kpi": "win_rate", "from": "2026-02-01", "to": "2026-01-01"}, 422, "before"),
        ({"kpi": "win_rate", "from": "2026-01-01T00:00:00"}, 422, "UTC offset"),
        ({"kpi": "win_rate", "from": "yesterday"}, 422, "RFC 3339"),
        ({"kpi": "win_rate", "group_by": "weather"}, 422, "unknown group_by"),
        ({"kpi": "win_rate", "group_by": "tool"}, 422, "cannot be grouped by tool"),
        ({"kpi": "duplicate_rate", "group_by": "team"}, 422, "cannot be grouped by team"),
        ({"kpi": "technology_adoption", "group_by": "source"}, 422, "cannot be grouped"),
        ({"group_by": "team"}, 422, "need a kpi"),
    ],
)
async def test_bad_questions_get_a_json_error(
    metrics: httpx.AsyncClient, params: dict[str, str], status: int, fragment: str
) -> None:
    resp = await metrics.get("/v1/kpis", params=params, headers=AUTH)
    assert resp.status_code == status, resp.text
    assert fragment in resp.json()["error"]["message"]


async def test_the_listing_defines_every_kpi_and_needs_the_token(
    metrics: httpx.AsyncClient,
) -> None:
    assert (await metrics.get("/v1/kpis")).status_code == 401
    body = (await metrics.get("/v1/kpis", headers=AUTH)).json()
    kpis = {k["kpi"]: k for k in body["kpis"]}
    assert {"win_rate", "lead_response_median", "technology_adoption", "forecast_accuracy"} <= set(
        kpis
    )
    assert all(k["definition"] and k["unit"] for k in kpis.values())
    assert kpis["win_rate"]["group_by"] == [
        "territory",
        "rep",
        "team",
        "manager",
        "source",
        "segment",
    ]
    window = (
        await metrics.get("/v1/kpis", params={"kpi": "win_rate", "window": "30d"}, headers=AUTH)
    ).json()
    assert window["window"] == {"from": "2026-10-30T12:00:00Z", "to": "2026-11-29T12:00:00Z"}
    assert window["group_by"] is None
    assert set(window) == {"kpi", "window", "group_by", "values"}
