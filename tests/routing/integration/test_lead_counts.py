"""Each rep's lead counts (``GET /v1/reps``, least-loaded decisions) are kept as leads are
assigned, reassigned and closed, instead of being counted over the whole history on every
read: after a day of every kind of change they equal a recount of the assignments."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from salesops_common.settings import database_dsn
from tests.routing.integration.helpers import (
    crm,
    merged,
    new_rep,
    put_on_crm,
    rep_change,
    roster,
)
from tests.routing.integration.territory_support import (
    closed,
    lead,
    open_territories,
    rep_of,
    route,
    route_each,
    territory,
)
from tests.support import Isolation, eventually

pytestmark = pytest.mark.integration

Counts = dict[UUID, tuple[int, int]]  # rep -> (assigned leads, open leads)


async def _query(iso: Isolation, query: str) -> Counts:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("routing")))
    try:
        rows = await conn.fetch(query)
    finally:
        await conn.close()
    return {r["rep_id"]: (r["assigned"], r["open"]) for r in rows if r["assigned"] or r["open"]}


async def recount(iso: Isolation) -> Counts:
    """Every rep's leads counted over every assignment: what the kept counts must equal."""
    return await _query(
        iso,
        "SELECT rep_id, count(*) AS assigned, count(*) FILTER (WHERE status = 'open') AS open "
        "FROM assignments WHERE rep_id IS NOT NULL GROUP BY rep_id",
    )


async def kept(iso: Isolation) -> Counts:
    return await _query(
        iso,
        "SELECT rep_id, assigned_leads AS assigned, open_leads AS open FROM rep_lead_counts",
    )


def shown(reps: list[dict[str, Any]]) -> Counts:
    return {
        UUID(r["id"]): (r["assigned_leads"], r["open_leads"])
        for r in reps
        if r["assigned_leads"] or r["open_leads"]
    }


async def test_kept_lead_counts_equal_a_recount_after_assignments_closes_and_reassignments(
    routing: httpx.AsyncClient, iso: Isolation
) -> None:
    ann, bo, cy = new_rep("ANN"), new_rep("BO"), new_rep("CY")
    await open_territories(
        iso,
        routing,
        [ann, bo, cy],
        territory("dach", [ann, bo, cy], {"country": ["DE"]}),
        territory("nordics", [bo, cy], {"country": ["SE"]}, strategy="least_loaded"),
    )
    dach = await route(iso, routing, [lead(f"DE{n}", country="DE") for n in range(6)])
    nordics = await route_each(iso, routing, [lead(f"SE{n}", country="SE") for n in range(4)])
    queued = await route(iso, routing, [lead("JP0", country="JP")])  # no territory: queued
    assert rep_of(queued[0]) is None
    assert await kept(iso) == await recount(iso)
    assert len(await recount(iso)) == 3

    # A won lead, a lost one, a merged duplicate and a repeated conversion (changes nothing).
    by_rep: dict[str, list[UUID]] = {}
    for shown_one in dach:
        by_rep.setdefault(str(rep_of(shown_one)), []).append(UUID(shown_one["lead_id"]))
    won, lost = by_rep[str(ann.id)][0], by_rep[str(bo.id)][0]
    duplicate = UUID(nordics[0]["lead_id"])
    await put_on_crm(
        iso,
        [
            crm("lead.converted", lead("WON").model_copy(update={"id": won})),
            crm("lead.disqualified", lead("LOST").model_copy(update={"id": lost})),
            crm("lead.converted", lead("WON").model_copy(update={"id": won})),
            crm(
                "lead.merged",
                merged(lead("DUP").model_copy(update={"id": duplicate}), into=lead("KEPT")),
            ),
        ],
    )
    await closed(routing, won, "converted")
    await closed(routing, lost, "disqualified")
    await closed(routing, duplicate, "merged")
    assert await kept(iso) == await recount(iso)

    # Cy leaves: her open leads move to Ann and Bo, her closed ones stay hers.
    await put_on_crm(iso, [crm("rep.updated", rep_change(cy, active=False))])

    async def cy_has_no_open_lead() -> bool:
        return (await recount(iso)).get(cy.id, (0, 0))[1] == 0

    await eventually(cy_has_no_open_lead, within=60)

    counts = await recount(iso)
    assert await kept(iso) == counts
    assert shown(await roster(routing)) == counts
    assert sum(assigned for assigned, _ in counts.values()) == 10  # the queued lead is no one's
    assert sum(open_ for _, open_ in counts.values()) == 7  # 10 less won, lost, merged
