"""Safe to change, on the real PostgreSQL and broker: where would this lead go (simulate), and
what would a proposed model have done with last week's leads (replay) — without touching the
rotation, the assignments or the routing topic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.routing.integration.helpers import hire, new_rep, roster
from tests.routing.integration.territory_support import (
    has_lead_facts,
    lead,
    of_type,
    open_territories,
    put_ruleset,
    rep_of,
    reps_of,
    route,
    routing_events,
    rows_in,
    ruleset,
    set_routing,
    skipped,
    territory,
)
from tests.support import AUTH, Isolation

pytestmark = pytest.mark.integration


SIMULATE, REPLAY = "/v1/routing/simulate", "/v1/routing/replay"


async def simulate(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(SIMULATE, json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    decision: dict[str, Any] = resp.json()
    return decision


async def test_simulating_a_lead_shows_where_it_would_go_and_changes_nothing(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo = new_rep("ANNA", name="Anna"), new_rep("BO", name="Bo")
    await open_territories(
        iso, routing, [anna, bo], territory("dach", [anna, bo], {"country": ["DE", "AT"]})
    )
    (first,) = await route(iso, routing, [lead("REAL1", country="DE")])
    assert rep_of(first) == str(anna.id)

    munich = {"company": "Brauhaus GmbH", "country": "DE", "postal_code": "80331"}
    one = await simulate(routing, {"lead": munich})
    two = await simulate(routing, {"lead": munich})

    assert (one["rep_id"], one["rep_name"], one["territory_id"]) == (str(bo.id), "Bo", "dach")
    assert (one["strategy"], one["ruleset_version"]) == ("round_robin", 1)
    assert one["explanation"]["territory"]["territory"] == "dach"
    assert one["explanation"]["chosen"] == {"rep_id": str(bo.id), "name": "Bo"}
    assert two["rep_id"] == one["rep_id"]  # the first simulation moved no rotation

    # At a date of Anna's planned leave (next week), and under a proposed model.
    now = datetime.now(UTC)
    leave = {
        "starts_at": (now + timedelta(days=7)).isoformat(),
        "ends_at": (now + timedelta(days=14)).isoformat(),
    }
    await set_routing(routing, anna, out_of_office=[leave])
    during = await simulate(
        routing, {"lead": {"country": "AT"}, "at": (now + timedelta(days=10)).isoformat()}
    )
    assert during["rep_id"] == str(bo.id)
    assert skipped(during) == {str(anna.id): "out_of_office"}
    proposal = ruleset(
        territory("germany", [anna], {"country": ["DE"]}),
        territory("austria", [bo], {"country": ["AT"]}),
    )
    proposed = await simulate(routing, {"lead": munich, "ruleset": proposal})
    assert (proposed["rep_id"], proposed["territory_id"]) == (str(anna.id), "germany")
    assert proposed["ruleset_version"] is None
    uncovered = await simulate(routing, {"lead": {"country": "JP"}})
    assert (uncovered["rep_id"], uncovered["strategy"]) == (None, "fallback_queue")

    # Nothing stored, no count moved, and the next real lead gets the rep simulated for it.
    assert await rows_in(iso, "assignments") == 1
    assert [r["assigned_leads"] for r in await roster(routing)] == [1, 0]
    second = lead("REAL2", country="DE")
    (real,) = await route(iso, routing, [second])
    assert rep_of(real) == one["rep_id"]
    events = await routing_events(iso, has_lead_facts((second.id, "lead.assigned")), settle=True)
    assert Counter(e.type for e in events) == {"ruleset.published": 1, "lead.assigned": 2}
    assert await rows_in(iso, "outbox") == 3


async def test_a_simulation_with_a_broken_proposal_is_refused(
    admin: httpx.AsyncClient,
) -> None:
    clashing = ruleset(
        territory("dach", (), {"country": ["DE"]}),
        territory("germany", (), {"country": ["DE"]}),
    )
    for path, body in (
        (SIMULATE, {"lead": {"country": "DE"}, "ruleset": clashing}),
        (REPLAY, {"since": datetime.now(UTC).isoformat(), "ruleset": clashing}),
    ):
        resp = await admin.post(path, json=body, headers=AUTH)
        assert resp.status_code == 422, resp.text
        findings = resp.json()["error"]["details"]["findings"]
        assert [f["code"] for f in findings] == ["overlapping_territories"]
    backwards = {"since": datetime.now(UTC).isoformat(), "until": "2020-01-01T00:00:00Z"}
    assert (await admin.post(REPLAY, json=backwards, headers=AUTH)).status_code == 422


async def test_replaying_a_proposal_over_past_leads_shows_who_would_have_got_what(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    anna, bo, chen = new_rep("ANNA", name="Anna"), new_rep("BO"), new_rep("CHEN")
    await hire(iso, routing, [anna, bo, chen])
    in_force = ruleset(
        territory("dach", [anna, bo], {"country": ["DE", "AT"]}),
        territory("france", [chen], {"country": ["FR"]}),
    )
    await put_ruleset(routing, in_force)
    await route(iso, routing, [lead("LAST-WEEK", country="FR")])  # before the window
    since = datetime.now(UTC).isoformat()
    leads = [lead(f"DE{n}", country="DE") for n in range(4)] + [lead("FR0", country="FR")]
    actual = await route(iso, routing, leads)
    assert Counter(reps_of(actual)) == {str(anna.id): 2, str(bo.id): 2, str(chen.id): 1}

    # The proposal: Anna alone works DACH.
    proposal = ruleset(
        territory("dach", [anna], {"country": ["DE", "AT"]}),
        territory("france", [chen], {"country": ["FR"]}),
    )
    resp = await routing.post(REPLAY, json={"since": since, "ruleset": proposal}, headers=AUTH)

    assert resp.status_code == 200, resp.text
    replayed = resp.json()
    assert (replayed["ruleset_version"], replayed["leads"], replayed["truncated"]) == (
        None,
        5,
        False,
    )
    assert replayed["changed"] == 2
    assert replayed["by_rep"] == {
        "actual": {str(anna.id): 2, str(bo.id): 2, str(chen.id): 1},
        "proposed": {str(anna.id): 4, str(chen.id): 1},
    }
    assert replayed["by_territory"]["proposed"] == {"dach": 4, "france": 1}
    results = {r["lead_id"]: r for r in replayed["results"]}
    assert set(results) == {str(one.id) for one in leads}
    for one, was in zip(leads, actual, strict=True):
        result = results[str(one.id)]
        assert result["actual"]["rep_id"] == rep_of(was)
        assert result["proposed"]["rep_id"] == str((chen if one.country == "FR" else anna).id)
        assert result["changed"] is (rep_of(was) == str(bo.id))
    assert results[str(leads[0].id)]["proposed"]["rep_name"] == "Anna"

    # The model in force, replayed, decides as it did; a limit truncates.
    same = (await routing.post(REPLAY, json={"since": since}, headers=AUTH)).json()
    assert (same["ruleset_version"], same["changed"]) == (1, 0)
    first_two = (await routing.post(REPLAY, json={"since": since, "limit": 2}, headers=AUTH)).json()
    assert (first_two["leads"], first_two["truncated"]) == (2, True)

    # Nothing happened for real: the assignments, the rotation and the topic are as they were.
    assert [r["assigned_leads"] for r in await roster(routing)] == [2, 2, 2]
    (after,) = await route(iso, routing, [lead("NEXT", country="DE")])
    assert rep_of(after) == str(anna.id)  # the rotation goes on where the real leads left it
    assert await rows_in(iso, "assignment_history") == 7
    events = await routing_events(iso, lambda seen: len(of_type(seen, "lead.assigned")) == 7)
    assert of_type(events, "lead.reassigned") == []
