"""Territory routing on the real PostgreSQL and broker: a sales-ops admin imports a territory
model, leads arrive from the CRM, and each goes to the territory its attributes say, to one of
that territory's reps by the territory's strategy."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.routing.integration.helpers import crm, hire, new_rep, put_on_crm
from tests.routing.integration.territory_support import (
    about_lead,
    away_now,
    closed,
    has_lead_facts,
    lead,
    members,
    open_territories,
    put_ruleset,
    rep_of,
    reps_of,
    route,
    route_each,
    routing_events,
    ruleset,
    set_routing,
    skip_detail,
    skipped,
    territory,
)
from tests.support import AUTH, Isolation

pytestmark = pytest.mark.integration


async def test_a_lead_from_munich_goes_to_the_dach_team(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, pierre = new_rep("ANNA", name="Anna"), new_rep("PIERRE", name="Pierre")
    await open_territories(
        iso,
        routing,
        [anna, pierre],
        territory("dach", [anna], {"id": "dach-countries", "country": ["DE", "AT", "CH"]}),
        territory("france", [pierre], {"id": "france-country", "country": ["FR"]}),
    )
    munich = lead("MUC", company="Brauhaus GmbH", country="DE", region="BY", postal_code="80331")

    (shown,) = await route(iso, routing, [munich])

    assert rep_of(shown) == str(anna.id)
    assert (shown["territory_id"], shown["strategy"], shown["ruleset_version"]) == (
        "dach",
        "round_robin",
        1,
    )
    why = shown["explanation"]
    assert why["territory"]["territory"] == "dach"
    assert why["territory"]["rule"] == "dach-countries"
    assert why["chosen"] == {"rep_id": str(anna.id), "name": "Anna"}
    (tried,) = why["territories_tried"]
    assert [c["rep_id"] for c in tried["candidates"]] == [str(anna.id)]
    assert "dach" in shown["reason"]

    events = await routing_events(iso, has_lead_facts((munich.id, "lead.assigned")))
    (fact,) = about_lead(events, munich.id, "lead.assigned")
    assert fact.data["territory_id"] == "dach"
    assert fact.data["ruleset_version"] == 1
    assert fact.data["summary"] == {"strategy": "round_robin", "rule": "dach-countries"}


async def test_a_named_account_goes_to_its_territory_before_the_country_rules(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, kim = new_rep("ANNA"), new_rep("KIM")
    await open_territories(
        iso,
        routing,
        [anna, kim],
        # The country territory even has the higher priority: a named account is more
        # specific, and specificity comes first.
        territory("dach", [anna], {"country": ["DE"]}, priority=10),
        territory(
            "strategic",
            [kim],
            {"id": "named", "domains": ["www.Siemens.example", "bmw.example"]},
        ),
    )
    named = lead("NAMED", country="DE", domain="siemens.example")
    other = lead("OTHER", country="DE", domain="brauhaus.example")

    to_named, to_country = await route(iso, routing, [named, other])

    assert (rep_of(to_named), to_named["territory_id"]) == (str(kim.id), "strategic")
    match = to_named["explanation"]["territory"]
    assert match["rule"] == "named"
    assert match["named_account"] is True
    assert match["also_matched"] == ["dach"]
    assert (rep_of(to_country), to_country["territory_id"]) == (str(anna.id), "dach")
    assert to_country["explanation"]["territory"]["named_account"] is False


async def test_a_postal_range_takes_central_paris_and_the_rest_of_france_stays_national(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    paris, france = new_rep("PARIS"), new_rep("FRANCE")
    await open_territories(
        iso,
        routing,
        [paris, france],
        territory(
            "paris",
            [paris],
            {"country": ["FR"], "postal_code": {"ranges": [["75001", "75020"]]}},
            {"country": ["FR"], "postal_code": {"prefixes": ["92"]}},
        ),
        territory("france", [france], {"country": ["FR"]}),
    )
    leads = [
        lead("BASTILLE", country="FR", postal_code="75011"),
        lead("NEUILLY", country="FR", postal_code="92200"),
        lead("PASSY", country="FR", postal_code="75116"),  # Paris, but outside the range
        lead("LYON", country="FR", postal_code="69001"),
        lead("UNKNOWN", country="FR"),  # no postal code: only the national rule holds
    ]

    shown = await route(iso, routing, leads)

    assert [a["territory_id"] for a in shown] == ["paris", "paris", "france", "france", "france"]
    assert shown[0]["explanation"]["territory"]["rule"] == "paris#1"
    assert shown[1]["explanation"]["territory"]["rule"] == "paris#2"


async def test_employee_and_revenue_bands_split_enterprise_smb_and_the_largest_accounts(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ent, smb, whales, us = (new_rep(n) for n in ("ENT", "SMB", "WHALES", "US"))
    await open_territories(
        iso,
        routing,
        [ent, smb, whales, us],
        territory("us-enterprise", [ent], {"country": ["US"], "employees": {"min": 1000}}),
        territory("us-smb", [smb], {"country": ["US"], "employees": {"max": 999}}),
        # As specific as enterprise (two conditions): the priority decides between them.
        territory(
            "us-whales",
            [whales],
            {"country": ["US"], "annual_revenue": {"min": 1_000_000_000}},
            priority=5,
        ),
        territory("us", [us], {"country": ["US"]}),
    )
    leads = [
        lead("BIG", country="US", employees=5000, annual_revenue=300_000_000),
        lead("SMALL", country="US", employees=40),
        lead("EDGE", country="US", employees=999),
        lead("WHALE", country="US", employees=80_000, annual_revenue=40_000_000_000),
        lead("UNSIZED", country="US"),
    ]

    shown = await route(iso, routing, leads)

    assert [a["territory_id"] for a in shown] == [
        "us-enterprise",
        "us-smb",
        "us-smb",
        "us-whales",
        "us",
    ]
    assert reps_of(shown) == [str(r.id) for r in (ent, smb, smb, whales, us)]
    assert shown[3]["explanation"]["territory"]["also_matched"] == ["us-enterprise", "us"]


async def test_a_child_territory_narrows_its_parent(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    pat, sam = new_rep("PAT"), new_rep("SAM")
    await open_territories(
        iso,
        routing,
        [pat, sam],
        territory("emea", [pat], {"country": ["DE", "FR"]}),
        territory("emea-software", [sam], {"industry": ["Software"]}, parent="emea"),
    )
    leads = [
        lead("FR-SOFTWARE", country="FR", industry="software"),
        lead("FR-RETAIL", country="FR", industry="Retail"),
        lead("US-SOFTWARE", country="US", industry="Software"),  # not in the parent: not in it
    ]

    to_child, to_parent, uncovered = await route(iso, routing, leads)

    assert (rep_of(to_child), to_child["territory_id"]) == (str(sam.id), "emea-software")
    assert to_child["explanation"]["territory"]["chain"] == ["emea-software", "emea"]
    assert (rep_of(to_parent), to_parent["territory_id"]) == (str(pat.id), "emea")
    assert rep_of(uncovered) is None
    assert uncovered["strategy"] == "fallback_queue"


async def test_when_nobody_in_the_child_territory_can_take_a_lead_it_goes_up_to_the_parent(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    pat, sam = new_rep("PAT", name="Pat"), new_rep("SAM", name="Sam")
    await open_territories(
        iso,
        routing,
        [pat, sam],
        territory("emea", [pat], {"country": ["DE", "FR"]}),
        territory("emea-software", [sam], {"industry": ["Software"]}, parent="emea"),
    )
    await set_routing(routing, sam, out_of_office=away_now("parental leave"))
    software = lead("FR-SOFTWARE", country="FR", industry="Software")

    (shown,) = await route(iso, routing, [software])

    assert (rep_of(shown), shown["territory_id"]) == (str(pat.id), "emea")
    assert "nobody available in emea-software" in shown["reason"]
    child, parent = shown["explanation"]["territories_tried"]
    assert child["territory"] == "emea-software"
    assert child["chosen"] is None
    assert skipped(shown) == {str(sam.id): "out_of_office"}
    assert "parental leave" in skip_detail(shown, sam)
    assert parent["territory"] == "emea"
    assert parent["chosen"] == {"rep_id": str(pat.id), "name": "Pat"}


async def test_a_lead_no_rule_covers_waits_in_the_fallback_queue(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, rowan = new_rep("ANNA"), new_rep("ROWAN")
    await open_territories(
        iso, routing, [anna, rowan], territory("dach", [anna], {"country": ["DE"]})
    )
    tokyo = lead("TOKYO", country="JP")

    (queued,) = await route(iso, routing, [tokyo])

    assert rep_of(queued) is None
    assert (queued["territory_id"], queued["strategy"]) == (None, "fallback_queue")
    assert queued["reason"] == "no territory rule covers the lead: fallback queue"
    assert queued["explanation"]["territory"] is None
    events = await routing_events(iso, has_lead_facts((tokyo.id, "lead.assigned")))
    (fact,) = about_lead(events, tokyo.id, "lead.assigned")
    assert fact.data["rep_id"] is None
    assert fact.data["strategy"] == "fallback_queue"

    # A catch-all territory for what no rule covers takes such leads from now on.
    await put_ruleset(
        routing,
        ruleset(
            territory("dach", [anna], {"country": ["DE"]}),
            territory("rest-of-world", [rowan]),
            fallback_territory="rest-of-world",
        ),
    )
    (caught,) = await route(iso, routing, [lead("OSAKA", country="JP")])
    assert (rep_of(caught), caught["territory_id"]) == (str(rowan.id), "rest-of-world")


async def test_weighted_round_robin_shares_the_leads_by_weight(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    senior, junior = new_rep("SENIOR"), new_rep("JUNIOR")
    await open_territories(
        iso,
        routing,
        [senior, junior],
        territory(
            "dach",
            members=members(senior, junior, weights=[3, 1]),
            strategy="weighted_round_robin",
            rules=[{"country": ["DE"]}],
        ),
    )
    leads = [lead(f"DE{n}", country="DE") for n in range(8)]

    shown = await route(iso, routing, leads)

    assert Counter(reps_of(shown)) == {str(senior.id): 6, str(junior.id): 2}
    assert {a["strategy"] for a in shown} == {"weighted_round_robin"}


async def test_least_loaded_counts_open_leads_and_a_converted_lead_frees_the_rep(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo = new_rep("ANNA"), new_rep("BO")
    await open_territories(
        iso,
        routing,
        [anna, bo],
        territory("renewals", [anna], {"lead_source": ["renewal"]}, priority=1),
        territory("inbound", [anna, bo], {"country": ["DE"]}, strategy="least_loaded"),
    )
    renewals = [lead(f"RENEWAL{n}", lead_source="Renewal") for n in range(2)]
    assert reps_of(await route(iso, routing, renewals)) == [str(anna.id)] * 2

    # Anna has two open leads from renewals: Bo takes the inbound ones until they are even.
    first_two = await route_each(iso, routing, [lead(f"IN{n}", country="DE") for n in range(2)])
    assert reps_of(first_two) == [str(bo.id)] * 2
    assert first_two[0]["strategy"] == "least_loaded"

    # Anna closes both renewals (won, lost): her load is zero, so the next lead is hers.
    await put_on_crm(
        iso,
        [crm("lead.converted", renewals[0]), crm("lead.disqualified", renewals[1])],
    )
    await closed(routing, renewals[0].id, "converted")
    await closed(routing, renewals[1].id, "disqualified")
    (third,) = await route(iso, routing, [lead("IN2", country="DE")])
    assert rep_of(third) == str(anna.id)
    assert "0 open leads" in third["reason"]


async def test_reps_at_their_daily_or_weekly_cap_are_skipped_and_then_the_lead_queues(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo = new_rep("ANNA"), new_rep("BO")
    await hire(iso, routing, [anna, bo])
    await set_routing(routing, anna, capacity_per_day=2)
    await set_routing(routing, bo, capacity_per_week=3)
    await put_ruleset(routing, ruleset(territory("dach", [anna, bo], {"country": ["DE"]})))
    leads = [lead(f"DE{n}", country="DE") for n in range(6)]

    shown = await route(iso, routing, leads)

    assert Counter(reps_of(shown)) == {str(anna.id): 2, str(bo.id): 3, None: 1}
    (queued,) = [a for a in shown if rep_of(a) is None]
    assert skipped(queued) == {str(anna.id): "at_capacity", str(bo.id): "at_capacity"}
    assert skip_detail(queued, anna) == "at capacity: 2 of 2 today"
    assert skip_detail(queued, bo) == "at capacity: 3 of 3 this week"
    assert "2 at_capacity" in queued["reason"]
    roster = {r["id"]: r for r in (await routing.get("/v1/reps", headers=AUTH)).json()["reps"]}
    assert roster[str(anna.id)]["capacity_per_day"] == 2
