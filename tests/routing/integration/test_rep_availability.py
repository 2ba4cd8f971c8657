"""Reps' availability on the real PostgreSQL and broker: holidays, working hours in the rep's
own time zone, a rep who leaves the company, and duplicates merged away."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from salesops_common.events import Lead, WorkingHours
from salesops_routing.bootstrap import create_app
from salesops_routing.config import RoutingSettings
from tests.routing.integration.helpers import (
    applied,
    assignment,
    crm,
    hire,
    merged,
    metric,
    new_rep,
    put_on_crm,
    rep_change,
    roster,
)
from tests.routing.integration.territory_support import (
    about_lead,
    away_now,
    closed,
    has_lead_facts,
    hours_around_now,
    lead,
    open_territories,
    put_ruleset,
    rep_of,
    reps_of,
    route,
    routing_events,
    ruleset,
    set_routing,
    skip_detail,
    skipped,
    territory,
)
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def quick_queue(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Routing looking at its fallback queue twice a second."""
    settings = RoutingSettings(
        database=iso.database("routing"), queue_poll_seconds=0.5, **iso.settings_kwargs()
    )
    async with running(create_app(settings)) as client:
        yield client


async def test_a_rep_on_holiday_is_skipped_and_back_gets_no_burst_unless_the_territory_asks(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo, cleo = new_rep("ANN"), new_rep("BO"), new_rep("CLEO")
    await hire(iso, routing, [ann, bo, cleo])
    team = [ann, bo, cleo]
    await put_ruleset(
        routing,
        ruleset(
            territory("germany", team, {"country": ["DE"]}),
            # Austria's manager wants whoever was away to get the leads they missed first.
            territory("austria", team, {"country": ["AT"]}, catch_up=True),
        ),
    )

    def leads(round_name: str, count: int) -> list[Lead]:
        return [
            lead(f"{round_name}-{country}{n}", country=country)
            for country in ("DE", "AT")
            for n in range(count)
        ]

    async def share(
        round_name: str, count: int
    ) -> tuple[Counter[str | None], list[dict[str, Any]]]:
        shown = await route(iso, routing, leads(round_name, count))
        return Counter(reps_of(shown[:count])), shown

    # Everyone has had one lead in each territory.
    first, _ = await share("BEFORE", 3)
    assert first == {str(ann.id): 1, str(bo.id): 1, str(cleo.id): 1}

    view = await set_routing(routing, cleo, out_of_office=away_now("holiday"))
    assert view["out_of_office"][0]["note"] == "holiday"
    away, shown = await share("AWAY", 4)
    assert away == {str(ann.id): 2, str(bo.id): 2}
    assert all(rep_of(a) != str(cleo.id) for a in shown)
    assert skipped(shown[0]) == {str(cleo.id): "out_of_office"}
    detail = skip_detail(shown[0], cleo)
    assert detail.startswith("out of office until ")
    assert detail.endswith("(holiday)")

    view = await set_routing(routing, cleo, out_of_office=None)
    assert view["out_of_office"] == []
    back = await route(iso, routing, leads("BACK", 3))
    germany, austria = Counter(reps_of(back[:3])), Counter(reps_of(back[3:]))
    # Germany: back in the rotation where it stands now, one lead each.
    assert germany == {str(ann.id): 1, str(bo.id): 1, str(cleo.id): 1}
    # Austria (catch-up): Cleo first gets the leads she missed.
    assert austria[str(cleo.id)] == 2


async def test_working_hours_are_read_in_the_reps_own_time_zone(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    # The same shift on both reps' clocks, around the present hour in Tokyo: Tokyo is at work,
    # Los Angeles (16 or 17 hours behind) is not.
    shift = hours_around_now("Asia/Tokyo")
    tokyo = new_rep(
        "TOKYO", time_zone="Asia/Tokyo", working_hours=WorkingHours.model_validate(shift)
    )
    la = new_rep("LA")
    await hire(iso, routing, [la, tokyo])
    await set_routing(routing, la, time_zone="America/Los_Angeles", working_hours=shift)
    await put_ruleset(routing, ruleset(territory("apac-us", [la, tokyo], {"country": ["JP"]})))

    shown = await route(iso, routing, [lead(f"JP{n}", country="JP") for n in range(3)])

    assert reps_of(shown) == [str(tokyo.id)] * 3
    assert skipped(shown[0]) == {str(la.id): "outside_hours"}
    assert skip_detail(shown[0], la) == (
        f"outside working hours {shift['start']}-{shift['end']} America/Los_Angeles"
    )
    reps = {r["id"]: r for r in await roster(routing)}
    assert reps[str(la.id)]["working_hours"] == shift
    assert reps[str(tokyo.id)]["time_zone"] == "Asia/Tokyo"

    # Los Angeles moves to a round-the-clock shift: back in the rotation, without a burst.
    all_day = {"start": "00:00", "end": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]}
    assert (await set_routing(routing, la, working_hours=all_day))["working_hours"] == all_day
    later = await route(iso, routing, [lead(f"JP-LATER{n}", country="JP") for n in range(2)])
    assert Counter(reps_of(later)) == {str(la.id): 1, str(tokyo.id): 1}
    bad = await routing.patch(
        f"/v1/reps/{la.id}/routing",
        json={"working_hours": {"start": "9am", "end": "17:00"}},
        headers=AUTH,
    )
    assert bad.status_code == 422


async def test_a_rep_who_leaves_hands_their_open_leads_on(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo = new_rep("ANN", name="Ann"), new_rep("BO", name="Bo")
    await open_territories(
        iso, routing, [ann, bo], territory("dach", [ann, bo], {"country": ["DE"]})
    )
    leads = [lead(f"DE{n}", country="DE") for n in range(4)]
    shown = await route(iso, routing, leads)
    anns = [one for one, a in zip(leads, shown, strict=True) if rep_of(a) == str(ann.id)]
    assert len(anns) == 2
    won, still_open = anns
    await put_on_crm(iso, [crm("lead.converted", won)])
    await closed(routing, won.id, "converted")
    # Her manager pauses her in routing first: no new leads, but she keeps the ones she has.
    assert (await set_routing(routing, ann, active=False))["active"] is False
    paused = await assignment(routing, still_open.id)
    assert paused is not None
    assert (paused["rep_id"], paused["reassignments"]) == (str(ann.id), 0)

    # Then she leaves the company: the CRM deactivates her.
    await put_on_crm(iso, [crm("rep.updated", rep_change(ann, active=False))])

    events = await routing_events(
        iso, has_lead_facts((still_open.id, "lead.reassigned")), settle=True
    )
    (moved,) = about_lead(events, still_open.id, "lead.reassigned")
    assert moved.data["rep_id"] == str(bo.id)
    assert moved.data["previous_rep_id"] == str(ann.id)
    assert moved.data["territory_id"] == "dach"
    assert moved.data["reason"].startswith("rep_deactivated: ")
    assert about_lead(events, won.id, "lead.reassigned") == []  # won leads stay hers

    now = await assignment(routing, still_open.id)
    assert now is not None
    assert (now["rep_id"], now["previous_rep_id"], now["reassignments"]) == (
        str(bo.id),
        str(ann.id),
        1,
    )
    assert now["explanation"]["reassigned_because"] == "rep_deactivated"
    assert [(h["kind"], h["rep_id"]) for h in now["history"]] == [
        ("assigned", str(ann.id)),
        ("reassigned", str(bo.id)),
    ]
    kept = await assignment(routing, won.id)
    assert kept is not None
    assert (kept["rep_id"], kept["status"], kept["reassignments"]) == (str(ann.id), "converted", 0)
    reps = {r["id"]: r for r in await roster(routing)}
    assert (reps[str(ann.id)]["open_leads"], reps[str(bo.id)]["open_leads"]) == (0, 3)


async def test_a_merged_duplicate_is_never_routed_again(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo = new_rep("ANN"), new_rep("BO")
    await open_territories(
        iso, routing, [ann, bo], territory("dach", [ann, bo], {"country": ["DE"]})
    )
    kept, duplicate = lead("KEPT", country="DE"), lead("DUPLICATE", country="DE")
    first = await route(iso, routing, [kept, duplicate])
    owner = next(r for r in (ann, bo) if str(r.id) == rep_of(first[1]))

    await put_on_crm(iso, [crm("lead.merged", merged(duplicate, into=kept))])
    await closed(routing, duplicate.id, "merged")
    # The duplicate's owner leaves, and a CRM re-sync sends the duplicate's lead.created again.
    await put_on_crm(
        iso,
        [crm("rep.updated", rep_change(owner, active=False)), crm("lead.created", duplicate)],
    )
    await applied(routing, 2 + 2 + 1 + 2)

    after = await assignment(routing, duplicate.id)
    assert after is not None
    assert (after["rep_id"], after["status"], after["reassignments"]) == (
        str(owner.id),
        "merged",
        0,
    )
    assert len(after["history"]) == 1
    # Nothing was published about it since: a lead routed now comes after anything that was.
    marker = lead("MARKER", country="DE")
    await route(iso, routing, [marker])
    events = await routing_events(iso, has_lead_facts((marker.id, "lead.assigned")), settle=True)
    assert len(about_lead(events, duplicate.id, "lead.assigned")) == 1
    assert about_lead(events, duplicate.id, "lead.reassigned") == []


async def test_a_lead_queued_out_of_hours_goes_to_the_rep_when_their_day_begins(
    quick_queue: httpx.AsyncClient, iso: Isolation
) -> None:
    routing = quick_queue
    ann = new_rep("ANN", time_zone="Europe/Berlin")
    await hire(iso, routing, [ann])
    await set_routing(routing, ann, working_hours=hours_around_now("Europe/Berlin", later=12))
    await put_ruleset(routing, ruleset(territory("germany", [ann], {"country": ["DE"]})))
    # Before it, more leads wait in the queue than routing looks at in one go: leads from
    # markets no territory covers, which stay there until a rule does.
    uncovered = [lead(f"JP{n}", country="JP") for n in range(120)]
    await put_on_crm(iso, [crm("lead.created", one) for one in uncovered])

    async def all_queued() -> bool:
        name = "salesops_routing_assignments_total"
        return await metric(routing, name, strategy="fallback_queue") == len(uncovered)

    await eventually(all_queued, within=60)
    night = lead("NIGHT", country="DE")
    (queued,) = await route(iso, routing, [night])
    assert rep_of(queued) is None
    assert skipped(queued) == {str(ann.id): "outside_hours"}
    # What an operator sees meanwhile: every queued lead counted, the oldest first, with why.
    assert (await routing.get("/v1/routing/queue")).status_code == 401
    waiting = (await routing.get("/v1/routing/queue?limit=500", headers=AUTH)).json()
    assert waiting["count"] == len(uncovered) + 1
    assert [w["lead_id"] for w in waiting["leads"]][-1] == str(night.id)
    times = [w["queued_at"] for w in waiting["leads"]]
    assert times == sorted(times)
    assert waiting["leads"][-1]["reason"] == queued["reason"]
    assert "(1 outside_hours)" in queued["reason"]
    first = (await routing.get("/v1/routing/queue?limit=3", headers=AUTH)).json()
    assert (first["count"], first["leads"]) == (waiting["count"], waiting["leads"][:3])

    await set_routing(routing, ann, working_hours=hours_around_now("Europe/Berlin"))

    async def taken() -> dict[str, Any] | None:
        found = await assignment(routing, night.id)
        return found if found and found["rep_id"] else None

    now = await eventually(taken, within=60)
    assert (now["rep_id"], now["previous_rep_id"]) == (str(ann.id), None)
    assert now["explanation"]["reassigned_because"] == "from_queue"
    events = await routing_events(iso, has_lead_facts((night.id, "lead.reassigned")))
    (moved,) = about_lead(events, night.id, "lead.reassigned")
    assert moved.data["rep_id"] == str(ann.id)
    assert moved.data["reason"].startswith("from_queue: ")
    left = (await routing.get("/v1/routing/queue?limit=500", headers=AUTH)).json()
    assert left["count"] == len(uncovered)
    assert str(night.id) not in {w["lead_id"] for w in left["leads"]}
