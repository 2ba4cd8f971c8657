"""A batch's decisions see each team as the decisions before them left it: the members a
decision reads (kept from the previous decision, with only the reps since given a lead
rebuilt) equal the members built afresh from the state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from salesops_routing.domain.ruleset import Member, Rule, Ruleset, Territory
from salesops_routing.service_layer.router import LeadInput, decide
from salesops_routing.service_layer.rulesets import Model
from salesops_routing.service_layer.state import MemoryState

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def reps(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.UUID(int=n + 1),
            "turn": n + 1,
            "name": f"Rep {n}",
            "email": f"rep{n}@sales.example",
            "active": True,
            "capacity_per_day": 4 if n % 3 == 0 else None,  # some reach their cap
        }
        for n in range(count)
    ]


def model(rows: list[dict[str, Any]]) -> Model:
    ids = [r["id"] for r in rows]
    ruleset = Ruleset(
        territories=[
            Territory(
                id="dach",
                strategy="weighted_round_robin",
                members=[Member(rep_id=i, weight=1 + n % 3) for n, i in enumerate(ids[:8])],
                rules=[Rule(country=["DE"])],
            ),
            Territory(
                id="nordics",
                strategy="least_loaded",
                members=[Member(rep_id=i) for i in ids[4:]],
                rules=[Rule(country=["SE"])],
            ),
            Territory(id="rest", members=[Member(rep_id=i) for i in ids[::2]]),
        ],
        fallback_territory="rest",
    )
    return Model.compile(1, ruleset)


async def test_the_members_a_decision_reads_equal_the_ones_built_afresh() -> None:
    rows = reps(12)
    compiled = model(rows)
    state = MemoryState()
    state.add_reps(rows)
    countries = ["DE", "SE", "US", "DE", "DE", "SE"]
    chosen = []
    for n in range(60):
        lead = LeadInput({"country": countries[n % len(countries)]})
        decision = await decide(state, compiled, lead, now=NOW)
        state.kept(decision, at=NOW)
        chosen.append(decision.rep_id)
        for territory in compiled.ruleset.territories:
            kept, clock = await state.members(compiled, territory, now=NOW)
            fresh_state = MemoryState()
            fresh_state.add_reps(rows)
            fresh_state.rotations = state.rotations
            fresh_state.assigned = state.assigned
            fresh_state.open_leads = state.open_leads
            assert (kept, clock) == await fresh_state.members(compiled, territory, now=NOW)
    capped = [r["id"] for r in rows if r["capacity_per_day"]]
    assert max(chosen.count(rep_id) for rep_id in capped) == 4  # a cap was reached and kept
    assert len(set(chosen)) == 12  # every rep got leads
