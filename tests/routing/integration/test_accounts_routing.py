"""Lead-to-account matching on the real PostgreSQL and broker: a lead from a company the CRM
already has as an account goes to the account's owner, before any territory rule; accounts
themselves are placed in territories by the same rules."""

from __future__ import annotations

from uuid import UUID

import httpx
import pytest

from salesops_common.envelope import Envelope
from tests.routing.integration.helpers import applied, crm, new_rep, put_on_crm
from tests.routing.integration.territory_support import (
    about_lead,
    account,
    away_now,
    has_lead_facts,
    lead,
    of_type,
    open_territories,
    put_ruleset,
    rep_of,
    route,
    routing_events,
    ruleset,
    set_routing,
    territory,
)
from tests.support import Isolation

pytestmark = pytest.mark.integration


async def test_a_lead_from_a_known_accounts_domain_goes_to_the_account_owner(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    olga, anna = new_rep("OLGA", name="Olga"), new_rep("ANNA", name="Anna")
    await open_territories(
        iso, routing, [olga, anna], territory("dach", [anna], {"country": ["DE"]})
    )
    acme = account("ACME", name="Acme GmbH", domain="acme.example", country="DE", owner_id=olga.id)
    await put_on_crm(iso, [crm("account.created", acme)])
    await applied(routing, 3)
    from_acme = lead("ACME-CFO", company="ACME", domain="acme.example", country="DE")

    (shown,) = await route(iso, routing, [from_acme])

    assert rep_of(shown) == str(olga.id)  # she is in no territory: ownership comes first
    assert shown["strategy"] == "account_owner"
    assert shown["territory_id"] == "dach"  # the account's territory
    assert shown["reason"] == "Acme GmbH (domain) is owned by Olga"
    matched = shown["explanation"]["account"]
    assert matched["account_id"] == str(acme.id)
    assert matched["method"] == "domain"
    assert matched["owner"] == {"rep_id": str(olga.id), "name": "Olga"}
    assert "skipped" not in matched
    events = await routing_events(iso, has_lead_facts((from_acme.id, "lead.assigned")))
    (fact,) = about_lead(events, from_acme.id, "lead.assigned")
    assert fact.data["summary"] == {
        "strategy": "account_owner",
        "account": {"account_id": str(acme.id), "method": "domain"},
    }


async def test_a_lead_whose_company_name_is_close_to_an_accounts_goes_to_its_owner(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    olga, ivan, anna = new_rep("OLGA"), new_rep("IVAN"), new_rep("ANNA")
    await open_territories(
        iso, routing, [olga, ivan, anna], territory("dach", [anna], {"country": ["DE"]})
    )
    initech = account("INITECH", name="Initech Systems", domain="initech.example", owner_id=olga.id)
    globex = account("GLOBEX", name="Globex Corporation", owner_id=ivan.id)
    await put_on_crm(iso, [crm("account.created", initech), crm("account.created", globex)])
    await applied(routing, 5)
    leads = [
        # Typed by hand on a web form, with a personal address: only the name says who.
        lead("TYPO", company="Initech Sytems Inc.", email="bill@gmail.com", country="DE"),
        lead("SHOUTED", company="GLOBEX Corp.", country="DE"),
        lead("NEIGHBOUR", company="Initech Software", country="DE"),  # another firm
    ]

    typo, shouted, neighbour = await route(iso, routing, leads)

    assert (rep_of(typo), typo["strategy"]) == (str(olga.id), "account_owner")
    assert typo["explanation"]["account"]["method"] == "fuzzy_name"
    assert 0.92 <= typo["explanation"]["account"]["score"] < 1
    assert (rep_of(shouted), shouted["strategy"]) == (str(ivan.id), "account_owner")
    assert shouted["explanation"]["account"]["method"] == "name"
    assert (rep_of(neighbour), neighbour["territory_id"]) == (str(anna.id), "dach")
    assert "account" not in neighbour["explanation"]


async def test_a_free_mail_domain_never_matches_an_account(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    olga, anna = new_rep("OLGA"), new_rep("ANNA")
    await open_territories(
        iso, routing, [olga, anna], territory("dach", [anna], {"country": ["DE"]})
    )
    # A one-person account a CRM user created from someone's Gmail address.
    freelancer = account("FREELANCER", name="Jo Freelancer", domain="gmail.com", owner_id=olga.id)
    await put_on_crm(iso, [crm("account.created", freelancer)])
    await applied(routing, 3)
    stranger = lead("STRANGER", email="sam@gmail.com", domain="gmail.com", country="DE")

    (shown,) = await route(iso, routing, [stranger])

    assert (rep_of(shown), shown["strategy"]) == (str(anna.id), "round_robin")
    assert shown["territory_id"] == "dach"
    assert "account" not in shown["explanation"]


async def test_while_the_owner_is_out_of_office_territory_rules_decide_and_say_why(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    olga, anna = new_rep("OLGA", name="Olga"), new_rep("ANNA", name="Anna")
    await open_territories(
        iso, routing, [olga, anna], territory("dach", [anna], {"country": ["DE"]})
    )
    acme = account("ACME", name="Acme GmbH", domain="acme.example", country="DE", owner_id=olga.id)
    await put_on_crm(iso, [crm("account.created", acme)])
    await applied(routing, 3)
    await set_routing(routing, olga, out_of_office=away_now("sabbatical"))
    # The lead says nothing of its country: the account's attributes fill in for the rules.
    from_acme = lead("ACME-CTO", domain="acme.example")

    (shown,) = await route(iso, routing, [from_acme])

    assert (rep_of(shown), shown["strategy"]) == (str(anna.id), "round_robin")
    assert shown["territory_id"] == "dach"
    matched = shown["explanation"]["account"]
    assert matched["account_id"] == str(acme.id)
    assert matched["owner"] == {"rep_id": str(olga.id), "name": "Olga"}
    assert matched["skipped"].startswith("out_of_office: out of office until ")
    assert "(sabbatical)" in matched["skipped"]
    events = await routing_events(iso, has_lead_facts((from_acme.id, "lead.assigned")))
    (fact,) = about_lead(events, from_acme.id, "lead.assigned")
    assert fact.data["summary"]["account"]["skipped"] == matched["skipped"]

    # Back from the sabbatical, the account's leads are hers again.
    await set_routing(routing, olga, out_of_office=None)
    (again,) = await route(iso, routing, [lead("ACME-CEO", domain="acme.example")])
    assert (rep_of(again), again["strategy"]) == (str(olga.id), "account_owner")


async def test_accounts_are_placed_in_territories_and_moved_when_a_new_version_says_so(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, pierre, erik = new_rep("ANNA"), new_rep("PIERRE"), new_rep("ERIK")
    await open_territories(
        iso,
        routing,
        [anna, pierre, erik],
        territory("dach", [anna], {"country": ["DE", "AT", "CH"]}),
        territory("france", [pierre], {"country": ["FR"]}),
    )
    motors = account("MOTORS", name="Bavaria Motors AG", country="DE", employees=120_000)
    bakery = account("BAKERY", name="Boulangerie SARL", country="FR", employees=12)
    await put_on_crm(iso, [crm("account.created", motors), crm("account.created", bakery)])

    def placements(seen: list[Envelope], account_id: UUID) -> list[tuple[str | None, int]]:
        return [
            (e.data["territory_id"], e.data["ruleset_version"])
            for e in of_type(seen, "account.territory_assigned")
            if e.data["account_id"] == str(account_id)
        ]

    def both_placed(seen: list[Envelope]) -> bool:
        return bool(placements(seen, motors.id) and placements(seen, bakery.id))

    await routing_events(iso, both_placed)

    # Version 2 carves the large German accounts out of DACH.
    published = await put_ruleset(
        routing,
        ruleset(
            territory("dach", [anna], {"country": ["DE", "AT", "CH"]}),
            territory("dach-enterprise", [erik], {"country": ["DE"], "employees": {"min": 1000}}),
            territory("france", [pierre], {"country": ["FR"]}),
        ),
    )
    assert (published["version"], published["accounts_moved"]) == (2, 1)

    events = await routing_events(iso, lambda seen: len(placements(seen, motors.id)) == 2)
    assert placements(events, motors.id) == [("dach", 1), ("dach-enterprise", 2)]
    assert placements(events, bakery.id) == [("france", 1)]  # not moved: not published again
    assert {e.source for e in of_type(events, "account.territory_assigned")} == {"/routing"}
