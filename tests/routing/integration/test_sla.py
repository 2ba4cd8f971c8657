"""First-touch SLAs on the real PostgreSQL and broker: a lead its owner does not call in time
is published as lead.sla_breached and moves on to the next rep, a bounded number of times;
a call in time keeps it where it is; timers survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from salesops_routing.bootstrap import create_app
from tests.routing.integration.helpers import assignment, crm, metric, new_rep, put_on_crm
from tests.routing.integration.sla_support import (
    call,
    fast_settings,
    first_owner,
    german_lead,
    has,
    of_lead,
    routing_facts,
    sla_timer,
    staff,
    stored,
)
from tests.support import Isolation, eventually, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def routing(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(fast_settings(iso))) as client:
        yield client


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def timer_in(iso: Isolation, lead_id: Any, state: str, **expected: Any) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        found = await sla_timer(iso, lead_id)
        if found and found["state"] == state and all(found[k] == v for k, v in expected.items()):
            return found
        return None

    result: dict[str, Any] = await eventually(reached, within=60, interval=0.2)
    return result


async def test_a_lead_nobody_calls_in_time_is_breached_and_goes_to_the_next_rep(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    await staff(iso, routing, reps, first_touch_minutes=0.02, max_reassignments=1)
    lead = german_lead("L1")

    await put_on_crm(iso, [crm("lead.created", lead)])

    facts = await routing_facts(
        iso, has(lead, ("lead.assigned", 1), ("lead.sla_breached", 1), ("lead.reassigned", 1))
    )
    assigned = of_lead(facts, lead, "lead.assigned")[0]
    breached = of_lead(facts, lead, "lead.sla_breached")[0]
    reassigned = of_lead(facts, lead, "lead.reassigned")[0]
    owner = assigned.data["rep_id"]
    other = next(str(r.id) for r in reps if str(r.id) != owner)
    assert breached.source == "/routing"
    assert breached.data["rep_id"] == owner
    assert breached.data["territory_id"] == "emea"
    due_at = at(breached.data["due_at"])
    assert due_at - at(assigned.data["assigned_at"]) == timedelta(seconds=1.2)
    assert at(breached.data["breached_at"]) >= due_at
    # The breach comes first, then the lead moves on to the rep who has not had it.
    assert facts.index(breached) < facts.index(reassigned)
    assert reassigned.data["rep_id"] == other
    assert reassigned.data["previous_rep_id"] == owner
    assert "sla_breached" in reassigned.data["reason"]
    shown = await assignment(routing, lead.id)
    assert shown is not None
    assert shown["rep_id"] == other

    async def counted() -> bool:
        return await metric(routing, "salesops_routing_sla_breaches_total") >= 1

    await eventually(counted, within=60)


async def test_reassignments_stop_after_max_reassignments(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    reps = [new_rep("R1"), new_rep("R2"), new_rep("R3")]
    await staff(iso, routing, reps, first_touch_minutes=0.02, max_reassignments=1)
    lead = german_lead("L1")

    await put_on_crm(iso, [crm("lead.created", lead)])

    # The second owner misses it too: breached, and the lead stays with them for good.
    final = await timer_in(iso, lead.id, "breached", attempt=1)
    facts = await routing_facts(iso, has(lead, ("lead.sla_breached", 2)))
    breaches = of_lead(facts, lead, "lead.sla_breached")
    moves = of_lead(facts, lead, "lead.reassigned")
    assert len(breaches) == 2
    assert len(moves) == 1
    assert [b.data["rep_id"] for b in breaches] == [
        of_lead(facts, lead, "lead.assigned")[0].data["rep_id"],
        moves[0].data["rep_id"],
    ]
    assert len({b.id for b in breaches}) == 2
    assert str(final["rep_id"]) == moves[0].data["rep_id"]
    shown = await assignment(routing, lead.id)
    assert shown is not None
    assert shown["rep_id"] == moves[0].data["rep_id"]


async def test_a_lead_never_goes_back_to_a_rep_who_missed_its_sla(iso: Isolation) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    lead = german_lead("L1")
    # Queued leads are retried at start and then not for an hour: the queue stays as it is.
    async with running(create_app(fast_settings(iso, queue_poll_seconds=3600))) as routing:
        await staff(iso, routing, reps, first_touch_minutes=0.02, max_reassignments=2)

        await put_on_crm(iso, [crm("lead.created", lead)])

        facts = await routing_facts(
            iso, has(lead, ("lead.sla_breached", 2), ("lead.reassigned", 2))
        )
        moves = of_lead(facts, lead, "lead.reassigned")
        assert moves[0].data["rep_id"] is not None
        # Both reps missed it: nobody is left in the territory but the fallback queue.
        assert moves[1].data["rep_id"] is None
        assert moves[1].data["previous_rep_id"] == moves[0].data["rep_id"]
        shown = await assignment(routing, lead.id)
        assert shown is not None
        assert shown["rep_id"] is None
        # The last timer stays breached: the queue has no SLA to keep.
        await timer_in(iso, lead.id, "breached", attempt=1)


async def test_an_sla_met_by_a_call_in_time_is_not_breached(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    await staff(iso, routing, reps, first_touch_minutes=1, max_reassignments=1)
    lead = german_lead("L1")
    assigned, owner, other = await first_owner(iso, lead, reps)
    called_at = at(assigned["assigned_at"]) + timedelta(seconds=20)

    await put_on_crm(
        iso,
        [
            crm("activity.logged", call(lead.id, other.id, called_at)),  # not the owner
            crm("activity.logged", call(lead.id, owner.id, called_at, direction="inbound")),
            crm("activity.logged", call(lead.id, owner.id, called_at)),
        ],
    )

    met = await timer_in(iso, lead.id, "met")
    assert met["met_at"] == called_at
    assert str(met["rep_id"]) == str(owner.id)


async def test_calls_that_are_not_the_owners_first_outbound_touch_in_time_do_not_count(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    await staff(iso, routing, reps, first_touch_minutes=0.02, max_reassignments=1)
    lead = german_lead("L1")
    assigned, owner, other = await first_owner(iso, lead, reps)
    assigned_at = at(assigned["assigned_at"])

    await put_on_crm(
        iso,
        [
            crm("activity.logged", call(lead.id, other.id, assigned_at)),
            crm("activity.logged", call(lead.id, owner.id, assigned_at, direction="inbound")),
            crm("activity.logged", call(lead.id, owner.id, assigned_at - timedelta(seconds=1))),
            crm("activity.logged", call(lead.id, owner.id, assigned_at + timedelta(minutes=5))),
        ],
    )

    facts = await routing_facts(iso, has(lead, ("lead.sla_breached", 1)))
    assert of_lead(facts, lead, "lead.sla_breached")[0].data["rep_id"] == str(owner.id)


async def test_a_touch_that_arrives_before_the_assignment_still_counts(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    rep = new_rep("R1")
    await staff(iso, routing, [rep], first_touch_minutes=5, max_reassignments=1)
    lead = german_lead("L1")
    # The CRM's clock is ahead of ours, or the lead's partition lags: the call is applied
    # first, yet it happened after routing assigned the lead.
    called_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    await put_on_crm(iso, [crm("activity.logged", call(lead.id, rep.id, called_at))])

    async def touch_known() -> dict[str, Any] | None:
        return await stored(iso, "SELECT * FROM first_touches WHERE lead_id = $1", lead.id)

    await eventually(touch_known, within=60)

    await put_on_crm(iso, [crm("lead.created", lead)])

    met = await timer_in(iso, lead.id, "met")
    assert met["met_at"] == called_at
    assert met["assigned_at"] < called_at


async def test_a_timer_survives_a_restart_of_the_service(iso: Isolation) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    lead = german_lead("L1")
    # This copy looks at timers once, at start, and then not for an hour.
    async with running(create_app(fast_settings(iso, sla_poll_seconds=3600))) as first:
        await staff(iso, first, reps, first_touch_minutes=0.02, max_reassignments=1)
        await put_on_crm(iso, [crm("lead.created", lead)])

        async def assigned() -> dict[str, Any] | None:
            return await assignment(first, lead.id)

        owner = (await eventually(assigned, within=60))["rep_id"]
    pending = await sla_timer(iso, lead.id)
    assert pending is not None
    assert pending["state"] == "pending"

    async with running(create_app(fast_settings(iso))):
        facts = await routing_facts(
            iso, has(lead, ("lead.sla_breached", 1), ("lead.reassigned", 1))
        )

    assert of_lead(facts, lead, "lead.sla_breached")[0].data["rep_id"] == owner
    assert of_lead(facts, lead, "lead.reassigned")[0].data["previous_rep_id"] == owner
