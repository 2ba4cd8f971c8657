"""Two routing processes in one consumer group share a burst of leads and the rotation."""

from __future__ import annotations

from collections import Counter, defaultdict
from uuid import uuid4

import pytest
from fastapi import FastAPI

from salesops_common.events import Lead
from salesops_routing.bootstrap import create_app
from tests.routing.integration.conftest import routing_settings
from tests.routing.integration.helpers import (
    assigned_facts,
    crm,
    hire,
    metric,
    new_lead,
    new_rep,
    put_on_crm,
    roster,
)
from tests.routing.integration.territory_support import of_type, routing_events
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration

LEADS = 300


async def both_consuming(*apps: FastAPI) -> None:
    """The dev broker takes a few seconds to seat both members; only then is the burst
    really shared between the two processes."""

    async def seated() -> bool:
        return all(app.state.runtime.consumers[0].assigned for app in apps)

    await eventually(seated, within=60, interval=0.5)


async def test_two_processes_assign_every_lead_once_in_strict_rotation(iso: Isolation) -> None:
    settings = routing_settings(iso)
    first, second = create_app(settings), create_app(settings)
    async with running(first) as one, running(second) as other:
        await both_consuming(first, second)
        reps = [new_rep(f"R{i}") for i in range(3)]
        await hire(iso, one, reps)
        leads = [new_lead(f"L{i}") for i in range(LEADS)]
        await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

        async def all_assigned() -> list[int] | None:
            counts = [r["assigned_leads"] for r in await roster(other)]
            return counts if sum(counts) == LEADS else None

        assert await eventually(all_assigned, within=60, interval=0.5) == [100, 100, 100]

        facts = await assigned_facts(iso, [lead.id for lead in leads])
        reps_of: defaultdict[str, set[str]] = defaultdict(set)
        for fact in facts:
            reps_of[fact.data["lead_id"]].add(fact.data["rep_id"])
        assert set(reps_of) == {str(lead.id) for lead in leads}
        assert all(len(assigned) == 1 for assigned in reps_of.values())
        per_rep = Counter(next(iter(assigned)) for assigned in reps_of.values())
        assert per_rep == {str(rep.id): 100 for rep in reps}

        # Both processes did part of the work, and together exactly the whole.
        name = "salesops_routing_assignments_total"
        shares = [await metric(c, name, strategy="round_robin") for c in (one, other)]
        assert sum(shares) == LEADS
        assert min(shares) > 0, shares


async def test_two_processes_share_a_weighted_territory_exactly_by_weight(iso: Isolation) -> None:
    settings = routing_settings(iso)
    first, second = create_app(settings), create_app(settings)
    async with running(first) as one, running(second) as other:
        await both_consuming(first, second)
        reps = [new_rep(f"W{i}") for i in range(3)]
        await hire(iso, one, reps)
        weights = [1, 2, 3]
        weighted = list(zip(reps, weights, strict=True))
        body = {
            "territories": [
                {
                    "id": "dach",
                    "strategy": "weighted_round_robin",
                    "members": [
                        {"rep_id": str(r.id), "weight": w}
                        for r, w in zip(reps, weights, strict=True)
                    ],
                    "rules": [{"country": ["DE", "AT", "CH"]}],
                }
            ]
        }
        resp = await other.put("/v1/routing/ruleset", json=body, headers=AUTH)
        assert resp.status_code == 200, resp.text
        leads = [
            Lead(id=uuid4(), source="api", source_id=f"D{i}", country=("DE", "AT", "CH")[i % 3])
            for i in range(LEADS)
        ]
        await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

        async def all_assigned() -> list[int] | None:
            counts = [r["assigned_leads"] for r in await roster(one)]
            return counts if sum(counts) == LEADS else None

        # 1 : 2 : 3, to the lead.
        assert await eventually(all_assigned, within=60, interval=0.5) == [50, 100, 150]

        wanted = {str(lead.id) for lead in leads}
        events = await routing_events(
            iso, lambda seen: wanted <= {e.data.get("lead_id") for e in seen}
        )
        reps_of: defaultdict[str, set[str]] = defaultdict(set)
        for fact in of_type(events, "lead.assigned"):
            assert fact.data["territory_id"] == "dach"
            reps_of[fact.data["lead_id"]].add(fact.data["rep_id"])
        assert all(len(assigned) == 1 for assigned in reps_of.values())
        per_rep = Counter(next(iter(assigned)) for assigned in reps_of.values())
        assert per_rep == {str(rep.id): 50 * w for rep, w in weighted}

        name = "salesops_routing_assignments_total"
        shares = [await metric(c, name, strategy="weighted_round_robin") for c in (one, other)]
        assert sum(shares) == LEADS
        assert min(shares) > 0, shares
