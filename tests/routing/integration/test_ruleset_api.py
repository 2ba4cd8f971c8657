"""The territory model over REST on the real PostgreSQL and broker: exported and imported as
YAML or JSON, validated before any change, versioned, published, and edited one territory at
a time."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml

from tests.routing.integration.helpers import hire, new_rep
from tests.routing.integration.territory_support import (
    RULESET,
    codes,
    current_version,
    has_lead_facts,
    lead,
    of_type,
    put_ruleset,
    rep_of,
    route,
    routing_events,
    ruleset,
    territory,
)
from tests.support import AUTH, Isolation

pytestmark = pytest.mark.integration


YAML = {**AUTH, "Content-Type": "application/yaml"}

# As an admin writes it: Norway's code unquoted, bands and postal ranges, members by e-mail.
MODEL_YAML = """
account_matching:
  fuzzy_name_threshold: 0.9
fallback_territory: rest-of-world
territories:
  - id: nordics
    name: Nordics
    priority: 5
    strategy: weighted_round_robin
    catch_up: true
    team: nordic-sales
    sla: {first_touch_minutes: 30, max_reassignments: 1}
    members:
      - {email: ingrid@example.com, weight: 2}
      - {email: lars@example.com}
    rules:
      - id: nordic-countries
        country: [NO, SE, DK, FI]
  - id: nordics-enterprise
    parent: nordics
    members:
      - {email: ingrid@example.com}
    rules:
      - id: nordic-large
        employees: {min: 1000}
        annual_revenue: {min: 250000000.5}
  - id: oslo
    parent: nordics
    priority: 1
    members:
      - {email: lars@example.com}
    rules:
      - postal_code: {prefixes: ["01", "02"], ranges: [["0150", "0190"]]}
        industry: [Software]
  - id: rest-of-world
    strategy: least_loaded
"""


def as_model(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text.replace("[NO,", "['NO',"))
    return loaded


def normalized(model: dict[str, Any]) -> dict[str, Any]:
    """What an export states of the model: weights are numbers with decimals."""
    for t in model["territories"]:
        for m in t.get("members", []):
            m["weight"] = float(m.get("weight", 1.0))
            if m["weight"] == 1.0:
                del m["weight"]
    return model


async def test_the_model_round_trips_as_yaml_and_importing_it_again_changes_nothing(
    admin: httpx.AsyncClient,
) -> None:
    put = await admin.put(
        RULESET, content=MODEL_YAML, headers=YAML, params={"comment": "Nordics go live"}
    )
    assert put.status_code == 200, put.text
    assert (put.json()["version"], put.json()["changed"]) == (1, True)

    exported = await admin.get(RULESET, headers={**AUTH, "Accept": "application/yaml"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    body = yaml.safe_load(exported.text)  # YAML 1.1 reader: NO must come back quoted
    assert body["version"] == 1
    assert body["ruleset"] == normalized(as_model(MODEL_YAML))
    assert body["ruleset"]["territories"][0]["rules"][0]["country"] == ["NO", "SE", "DK", "FI"]
    as_json = await admin.get(RULESET, headers=AUTH)
    assert as_json.json() == body
    assert (await admin.get(RULESET, headers=AUTH, params={"format": "yaml"})).text == (
        exported.text
    )

    again = await admin.put(RULESET, content=exported.text, headers=YAML)
    assert again.status_code == 200, again.text
    assert (again.json()["version"], again.json()["changed"]) == (1, False)
    versions = (await admin.get(f"{RULESET}/versions", headers=AUTH)).json()
    assert [(v["version"], v["comment"]) for v in versions] == [(1, "Nordics go live")]


async def test_each_new_version_is_published_and_the_same_model_twice_makes_none(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna = new_rep("ANNA")
    await hire(iso, routing, [anna])
    first = ruleset(territory("dach", [anna], {"country": ["DE"]}))
    assert (await put_ruleset(routing, first))["version"] == 1
    # The same model, written with its defaults and keys in another order.
    same = {
        "fallback_territory": None,
        "territories": [
            {
                "rules": [{"country": ["de"]}],
                "strategy": "round_robin",
                "members": [{"weight": 1, "rep_id": str(anna.id)}],
                "id": "dach",
                "priority": 0,
            }
        ],
    }
    unchanged = await put_ruleset(routing, same)
    assert (unchanged["version"], unchanged["changed"]) == (1, False)
    second = ruleset(territory("dach", [anna], {"country": ["DE", "AT"]}))
    assert (await put_ruleset(routing, second))["version"] == 2

    events = await routing_events(
        iso, lambda seen: len(of_type(seen, "ruleset.published")) >= 2, settle=True
    )
    # Keyed by version, so on different partitions: read in any order.
    published = sorted(
        of_type(events, "ruleset.published"), key=lambda e: e.data["ruleset_version"]
    )
    assert [e.data["ruleset_version"] for e in published] == [1, 2]
    assert published[1].data["ruleset"]["territories"][0]["rules"] == [{"country": ["DE", "AT"]}]
    assert published[1].key == "2"
    assert published[1].source == "/routing"
    versions = (await routing.get(f"{RULESET}/versions", headers=AUTH)).json()
    assert [v["version"] for v in versions] == [2, 1]
    old = await routing.get(RULESET, headers=AUTH, params={"version": 1})
    assert old.json()["ruleset"]["territories"][0]["rules"] == [{"country": ["DE"]}]
    assert (await routing.get(RULESET, headers=AUTH, params={"version": 9})).status_code == 404


async def test_a_model_with_errors_is_refused_and_nothing_changes(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo = new_rep("ANNA"), new_rep("BO")
    await hire(iso, routing, [anna, bo])
    good = ruleset(territory("dach", [anna], {"country": ["DE"]}))
    await put_ruleset(routing, good)
    clashing = ruleset(
        territory("dach", [anna], {"country": ["DE"]}),
        # Germany twice at equal priority: which team gets a German lead would hang on the ids.
        territory("germany", [bo], {"id": "de-too", "country": ["DE", "AT"]}),
        territory("munich", [bo], {"region": ["BY"]}, parent="bavaria"),
    )

    refused = await routing.put(RULESET, json=clashing, headers=AUTH)

    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "nothing was changed" in error["message"]
    findings = error["details"]["findings"]
    assert set(codes(findings, "error")) == {"overlapping_territories", "unknown_parent"}
    overlap = next(f for f in findings if f["code"] == "overlapping_territories")
    assert "'dach' and 'germany'" in overlap["message"]
    assert "country DE" in overlap["message"]
    assert await current_version(routing) == 1
    current = (await routing.get(RULESET, headers=AUTH)).json()["ruleset"]
    assert [t["id"] for t in current["territories"]] == ["dach"]
    assert [
        v["version"] for v in (await routing.get(f"{RULESET}/versions", headers=AUTH)).json()
    ] == [1]

    checked = await routing.post(f"{RULESET}/validate", json=clashing, headers=AUTH)
    assert checked.status_code == 200
    assert checked.json()["valid"] is False
    assert set(codes(checked.json()["findings"], "error")) == set(codes(findings, "error"))

    unknown_strategy = ruleset(territory("dach", [anna], {"country": ["DE"]}, strategy="random"))
    invalid = await routing.put(RULESET, json=unknown_strategy, headers=AUTH)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"][0]["loc"][-1] == "strategy"
    unreadable = await routing.put(RULESET, content="territories: [", headers=YAML)
    assert unreadable.status_code == 400
    assert await current_version(routing) == 1
    events = await routing_events(
        iso, lambda seen: bool(of_type(seen, "ruleset.published")), settle=True
    )
    assert [e.data["ruleset_version"] for e in of_type(events, "ruleset.published")] == [1]


async def test_warnings_are_returned_and_the_model_is_accepted(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, gone, idle = (
        new_rep("ANNA"),
        new_rep("GONE", active=False),
        new_rep("IDLE", email="idle@example.com"),
    )
    # A manager in no territory is as it should be: managers never work leads.
    boss = new_rep("BOSS", email="boss@example.com", role="manager")
    coach = new_rep("COACH", email="coach@example.com", role="manager")
    await hire(iso, routing, [anna, gone, idle, boss, coach])
    model = ruleset(
        territory("dach", [anna], {"id": "dach-countries", "country": ["DE", "AT"]}, priority=5),
        # Every German lead goes to dach first: this rule never routes one.
        territory("germany", [anna], {"id": "germany-country", "country": ["DE"]}),
        territory("benelux", [gone], {"country": ["NL", "BE"]}),  # nobody active to work it
        territory("swiss", [coach], {"country": ["CH"]}),  # nor here: a manager does not sell
        territory(
            "nordics",
            members=[{"email": "new.hire@example.com"}],  # not in the CRM yet
            rules=[{"country": ["SE"]}],
        ),
    )

    checked = await routing.post(f"{RULESET}/validate", json=model, headers=AUTH)
    published = await put_ruleset(routing, model)

    assert (published["version"], published["changed"]) == (1, True)
    findings = published["findings"]
    assert checked.json() == {"valid": True, "findings": findings}
    assert codes(findings, "error") == []
    by_code = {f["code"]: f for f in findings}
    assert set(by_code) == {
        "unreachable_rule",
        "no_active_members",
        "unknown_member",
        "rep_in_no_territory",
    }
    unreachable = by_code["unreachable_rule"]
    assert (unreachable["territory_id"], unreachable["rule_id"]) == ("germany", "germany-country")
    assert "territory 'dach'" in unreachable["message"]
    assert [f["territory_id"] for f in findings if f["code"] == "no_active_members"] == [
        "benelux",
        "swiss",
        "nordics",
    ]
    assert "new.hire@example.com" in by_code["unknown_member"]["message"]
    (unplaced,) = [f for f in findings if f["code"] == "rep_in_no_territory"]
    assert "idle@example.com" in unplaced["message"]


async def test_territories_are_edited_one_at_a_time_and_each_edit_is_a_version(
    admin: httpx.AsyncClient,
) -> None:
    base = "/v1/routing/territories"
    dach = territory("dach", (), {"country": ["DE", "AT", "CH"]}, priority=2)
    france = territory("france", (), {"country": ["FR"]})

    created = await admin.put(f"{base}/dach", json=dach, headers=AUTH)
    assert created.status_code == 200, created.text
    assert created.json()["version"] == 1
    assert (await admin.put(f"{base}/france", json=france, headers=AUTH)).json()["version"] == 2
    narrowed = {**dach, "rules": [{"country": ["DE", "AT"]}], "strategy": "least_loaded"}
    assert (await admin.put(f"{base}/dach", json=narrowed, headers=AUTH)).json()["version"] == 3

    shown = (await admin.get(f"{base}/dach", headers=AUTH)).json()
    assert [r["country"] for r in shown["rules"]] == [["DE", "AT"]]
    assert (shown["strategy"], shown["priority"]) == ("least_loaded", 2)
    deleted = await admin.delete(f"{base}/france", headers=AUTH)
    assert deleted.json()["version"] == 4
    assert [t["id"] for t in (await admin.get(base, headers=AUTH)).json()] == ["dach"]
    assert (await admin.get(f"{base}/france", headers=AUTH)).status_code == 404
    assert (await admin.delete(f"{base}/france", headers=AUTH)).status_code == 404
    at_two = (await admin.get(RULESET, headers=AUTH, params={"version": 2})).json()
    assert [t["id"] for t in at_two["ruleset"]["territories"]] == ["dach", "france"]
    versions = (await admin.get(f"{RULESET}/versions", headers=AUTH)).json()
    assert [v["comment"] for v in versions] == [
        "territory france deleted",
        "territory dach saved",
        "territory france saved",
        "territory dach saved",
    ]

    mismatch = await admin.put(f"{base}/italy", json=dach, headers=AUTH)
    assert mismatch.status_code == 422
    clash = territory("germany", (), {"country": ["DE"]}, priority=2)
    refused = await admin.put(f"{base}/germany", json=clash, headers=AUTH)
    assert refused.status_code == 422
    assert codes(refused.json()["error"]["details"]["findings"], "error") == [
        "overlapping_territories"
    ]
    assert await current_version(admin) == 4


async def test_a_rule_change_mid_day_routes_leads_before_by_the_old_and_after_by_the_new(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo = new_rep("ANNA"), new_rep("BO")
    await hire(iso, routing, [anna, bo])
    # Before any import: everyone, round robin (version 0).
    early = lead("EARLY", country="DE")
    (at_dawn,) = await route(iso, routing, [early])

    # At nine the admin imports the exported model as it is, to start from: nothing changes.
    exported = (await routing.get(RULESET, headers=AUTH)).json()
    assert exported["version"] == 0
    assert exported["ruleset"]["fallback_territory"] == "default"
    assert [m["rep_id"] for m in exported["ruleset"]["territories"][0]["members"]] == [
        str(anna.id),
        str(bo.id),
    ]
    assert (await put_ruleset(routing, exported))["version"] == 1
    morning = lead("MORNING", country="DE")
    (before,) = await route(iso, routing, [morning])

    # At noon Germany moves to Anna's new territory.
    await put_ruleset(routing, ruleset(territory("germany", [anna], {"country": ["DE"]})))
    afternoon = lead("AFTERNOON", country="DE")
    (after,) = await route(iso, routing, [afternoon])

    assert (rep_of(at_dawn), at_dawn["territory_id"], at_dawn["ruleset_version"]) == (
        str(anna.id),
        "default",
        0,
    )
    # The same territory of everyone, its rotation going on: Bo's turn.
    assert (rep_of(before), before["territory_id"], before["ruleset_version"]) == (
        str(bo.id),
        "default",
        1,
    )
    assert (rep_of(after), after["territory_id"], after["ruleset_version"]) == (
        str(anna.id),
        "germany",
        2,
    )
    assert before["explanation"]["ruleset_version"] == 1
    # The morning's lead stays where the rules of its time sent it.
    again = (await routing.get(f"/v1/assignments/{morning.id}", headers=AUTH)).json()
    assert (again["rep_id"], again["ruleset_version"]) == (str(bo.id), 1)
    events = await routing_events(
        iso,
        has_lead_facts(
            (early.id, "lead.assigned"),
            (morning.id, "lead.assigned"),
            (afternoon.id, "lead.assigned"),
        ),
    )
    facts = of_type(events, "lead.assigned")
    versions = {f.data["lead_id"]: f.data["ruleset_version"] for f in facts}
    assert versions == {str(early.id): 0, str(morning.id): 1, str(afternoon.id): 2}


async def test_the_admin_endpoints_refuse_a_caller_without_the_token(
    admin: httpx.AsyncClient,
) -> None:
    calls = [
        ("GET", RULESET),
        ("PUT", RULESET),
        ("POST", f"{RULESET}/validate"),
        ("GET", f"{RULESET}/versions"),
        ("GET", "/v1/routing/territories"),
        ("GET", "/v1/routing/territories/dach"),
        ("PUT", "/v1/routing/territories/dach"),
        ("DELETE", "/v1/routing/territories/dach"),
        ("POST", "/v1/routing/simulate"),
        ("POST", "/v1/routing/replay"),
        ("PATCH", f"/v1/reps/{uuid4()}/routing"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            resp = await admin.request(method, path, json={}, headers=headers)
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.json()["error"]["code"] == "unauthenticated"
    assert await current_version(admin) == 0
