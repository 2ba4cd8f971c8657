"""Routing on the real PostgreSQL and broker: CRM events in, assignments and lead.assigned out."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from salesops_common.envelope import deterministic_event_id
from salesops_routing.bootstrap import create_app
from tests.routing.integration.conftest import routing_settings
from tests.routing.integration.helpers import (
    applied,
    assigned_facts,
    assignments,
    crm,
    hire,
    merged,
    metric,
    new_lead,
    new_rep,
    put_on_crm,
    rep_change,
    roster,
)
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration


def skipped(shown: dict[str, Any]) -> list[dict[str, Any]]:
    tried = shown["explanation"]["territories_tried"][0]["skipped"]
    return [{k: s[k] for k in ("rep_id", "name", "reason")} for s in tried]


async def test_new_leads_go_to_each_rep_in_turn_with_an_explanation(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    reps = [new_rep("R1"), new_rep("R2"), new_rep("R3", role=None)]
    await hire(iso, routing, reps)
    leads = [new_lead(f"L{i}") for i in range(3)]
    missing = await routing.get(f"/v1/assignments/{leads[0].id}", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

    shown = await assignments(routing, leads)
    rep_ids = [str(r.id) for r in reps]
    assert sorted(a["rep_id"] for a in shown) == sorted(rep_ids)  # one each
    first = shown[0]
    assert first["strategy"] == "round_robin"
    assert first["territory_id"] == "default"
    explanation = first["explanation"]
    tried = explanation["territories_tried"][0]
    assert sorted(c["rep_id"] for c in tried["candidates"]) == sorted(rep_ids)
    assert tried["candidates"][0]["rep_id"] == first["rep_id"]  # ranked, the chosen first
    assert explanation["chosen"]["rep_id"] == first["rep_id"]
    assert tried["skipped"] == []

    facts = await assigned_facts(iso, [lead.id for lead in leads])
    assert {(f.data["lead_id"], f.data["rep_id"]) for f in facts} == {
        (a["lead_id"], a["rep_id"]) for a in shown
    }
    fact = next(f for f in facts if f.data["lead_id"] == str(leads[0].id))
    assert fact.type == "lead.assigned"
    assert fact.source == "/routing"
    assert fact.id == deterministic_event_id("routing", "lead.assigned", str(leads[0].id))
    assert fact.data["territory_id"] == "default"
    assert fact.data["ruleset_version"] == 0
    assert fact.data["previous_rep_id"] is None
    assert [r["assigned_leads"] for r in await roster(routing)] == [1, 1, 1]
    assigned = await metric(routing, "salesops_routing_assignments_total", strategy="round_robin")
    assert assigned == 3


async def test_v1_endpoints_refuse_a_caller_without_the_token(
    admin: httpx.AsyncClient,
) -> None:
    for path in (f"/v1/assignments/{uuid4()}", "/v1/reps"):
        resp = await admin.get(path)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "unauthenticated"
        wrong = await admin.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert (await admin.get("/healthz")).status_code == 200


async def test_a_lead_delivered_twice_is_assigned_once_and_the_rotation_moves_once(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo = new_rep("ANN"), new_rep("BO")
    await hire(iso, routing, [ann, bo])
    twice, next_one = new_lead("TWICE"), new_lead("NEXT")
    created = crm("lead.created", twice)
    await put_on_crm(iso, [created, created])

    async def duplicate_seen() -> bool:
        return (
            await metric(
                routing,
                "salesops_routing_consumer_events_total",
                topic="salesops.crm.v1",
                outcome="duplicate",
            )
            >= 1
        )

    await eventually(duplicate_seen, within=60)
    await put_on_crm(iso, [crm("lead.created", next_one)])

    first, second = await assignments(routing, [twice, next_one])
    assert (first["rep_id"], second["rep_id"]) == (str(ann.id), str(bo.id))
    facts = await assigned_facts(iso, [twice.id, next_one.id])
    assert len({f.id for f in facts if f.data["lead_id"] == str(twice.id)}) == 1
    assert [r["assigned_leads"] for r in await roster(routing)] == [1, 1]


async def test_a_manager_never_gets_a_lead(routing: httpx.AsyncClient, iso: Isolation) -> None:
    boss, ann = new_rep("BOSS", role="manager"), new_rep("ANN")
    await hire(iso, routing, [boss, ann])
    leads = [new_lead(f"M{i}") for i in range(3)]
    await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

    shown = await assignments(routing, leads)
    assert {a["rep_id"] for a in shown} == {str(ann.id)}
    assert skipped(shown[0]) == [{"rep_id": str(boss.id), "name": "Rep BOSS", "reason": "manager"}]
    counts = {r["id"]: r["assigned_leads"] for r in await roster(routing)}
    assert counts == {str(boss.id): 0, str(ann.id): 3}


async def test_a_deactivated_rep_is_skipped_and_the_explanation_says_so(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo = new_rep("ANN", team="East"), new_rep("BO", team="East", time_zone="Europe/Paris")
    await hire(iso, routing, [ann, bo])
    await put_on_crm(iso, [crm("rep.updated", rep_change(bo, active=False))])

    async def bo_inactive() -> dict[str, object] | None:
        found = [r for r in await roster(routing) if r["id"] == str(bo.id)]
        return found[0] if found and found[0]["active"] is False else None

    bo_now = await eventually(bo_inactive, within=60)
    # The update named only `active`: what it left out is kept, not erased.
    assert (bo_now["name"], bo_now["team"], bo_now["time_zone"]) == (
        "Rep BO",
        "East",
        "Europe/Paris",
    )
    leads = [new_lead("I1"), new_lead("I2")]
    await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

    shown = await assignments(routing, leads)
    assert {a["rep_id"] for a in shown} == {str(ann.id)}
    assert skipped(shown[0]) == [{"rep_id": str(bo.id), "name": "Rep BO", "reason": "inactive"}]


async def test_with_no_eligible_rep_the_lead_waits_in_the_fallback_queue(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    await hire(iso, routing, [new_rep("GONE", active=False)])
    lead = new_lead("Q1")
    await put_on_crm(iso, [crm("lead.created", lead)])

    (shown,) = await assignments(routing, [lead])
    assert shown["rep_id"] is None
    assert shown["strategy"] == "fallback_queue"
    assert shown["explanation"]["chosen"] is None
    assert "no eligible rep" in shown["reason"]
    (fact,) = await assigned_facts(iso, [lead.id])
    assert fact.data["rep_id"] is None
    assert fact.data["strategy"] == "fallback_queue"
    queued = await metric(routing, "salesops_routing_assignments_total", strategy="fallback_queue")
    assert queued == 1


@pytest.mark.parametrize("withdrawal", ["merged", "deleted"])
async def test_a_merged_or_deleted_lead_is_never_routed(
    routing: httpx.AsyncClient, iso: Isolation, withdrawal: str
) -> None:
    await hire(iso, routing, [new_rep("ANN")])
    gone, kept = new_lead("GONE"), new_lead("KEPT")
    if withdrawal == "merged":
        withdrawn = crm("lead.merged", merged(gone, into=kept))
    else:
        withdrawn = crm("lead.deleted", gone)
    # Its lead.created comes after (a replay, a CRM that reports late): still not routed.
    await put_on_crm(iso, [withdrawn, crm("lead.created", gone), crm("lead.created", kept)])
    await applied(routing, 1 + 3)  # the rep, then the three lead events

    await assignments(routing, [kept])
    resp = await routing.get(f"/v1/assignments/{gone.id}", headers=AUTH)
    assert resp.status_code == 404
    assert resp.json()["error"]["details"] == {"withdrawn": withdrawal}
    assert [r["assigned_leads"] for r in await roster(routing)] == [1]
    routed = await metric(routing, "salesops_routing_assignments_total", strategy="round_robin")
    assert routed == 1


async def test_events_about_a_lead_in_one_batch_apply_in_their_order(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    """New leads wait to be assigned together; an event of another type behind them in the
    same batch must still see them assigned first."""
    await hire(iso, routing, [new_rep("ANN")])
    lost, twin, kept = new_lead("LOST"), new_lead("TWIN"), new_lead("KEPT")
    await put_on_crm(
        iso,
        [
            crm("lead.created", lost),
            crm("lead.disqualified", lost),
            crm("lead.created", kept),
            crm("lead.created", twin),
            crm("lead.merged", merged(twin, into=kept)),
        ],
    )
    await applied(routing, 1 + 5)

    by_lead = {a["lead_id"]: a for a in await assignments(routing, [lost, kept, twin])}
    assert by_lead[str(lost.id)]["status"] == "disqualified"
    assert by_lead[str(twin.id)]["status"] == "merged"
    assert by_lead[str(kept.id)]["status"] == "open"
    assert [r["assigned_leads"] for r in await roster(routing)] == [3]


async def test_changes_to_other_leads_do_not_split_a_batch_of_new_leads(
    iso: Isolation,
) -> None:
    """New leads of one batch are decided in one pass (one ``assigned_at``) even with changes
    to other, older leads between them; a change to a waiting lead still comes after its
    assignment (test above)."""
    older = [new_lead(f"OLDER{i}") for i in range(20)]
    async with running(create_app(routing_settings(iso))) as routing:
        await hire(iso, routing, [new_rep("ANN")])
        await put_on_crm(iso, [crm("lead.created", lead) for lead in older])
        await assignments(routing, older)
    new = [new_lead(f"NEW{i}") for i in range(20)]
    interleaved = []
    for lead, old in zip(new, older, strict=True):
        interleaved.append(crm("lead.created", lead))
        interleaved.append(crm("lead.updated", old.model_copy(update={"company": "Renamed"})))
    # Put on the topic while no consumer runs: the next one reads them as one batch.
    await put_on_crm(iso, interleaved)
    async with running(create_app(routing_settings(iso))) as routing:
        found = await assignments(routing, new)
    assert len({a["assigned_at"] for a in found}) == 1, sorted(a["assigned_at"] for a in found)
