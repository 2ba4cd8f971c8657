"""Fair rotation as a pure rule: who gets the next lead, and the explanation of why."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesops_routing.domain.rotation import (
    FALLBACK_QUEUE,
    ROUND_ROBIN,
    RoutableRep,
    RoutingDecision,
    next_in_rotation,
)

pytestmark = pytest.mark.unit


def rep(turn: int, *, active: bool = True, role: str | None = "rep") -> RoutableRep:
    return RoutableRep(uuid.uuid4(), turn, f"Rep {turn}", active, role)


def route(reps: list[RoutableRep], leads: int) -> list[RoutableRep | None]:
    """Route ``leads`` new leads one after another, as the rotation row remembers turns."""
    last_turn: int | None = None
    chosen: list[RoutableRep | None] = []
    for _ in range(leads):
        decision = next_in_rotation(reps, last_turn=last_turn)
        chosen.append(decision.rep)
        if decision.rep is not None:
            last_turn = decision.rep.turn
    return chosen


def test_leads_go_round_the_reps_in_rotation_order() -> None:
    ann, bo, cy = rep(1), rep(2), rep(3)
    assert route([cy, ann, bo], 7) == [ann, bo, cy, ann, bo, cy, ann]


def test_a_rep_absent_role_is_eligible() -> None:
    only = rep(1, role=None)
    assert next_in_rotation([only], last_turn=None).rep == only


def test_the_rotation_continues_after_the_rep_served_last() -> None:
    ann, bo, cy = rep(1), rep(2), rep(3)
    assert next_in_rotation([ann, bo, cy], last_turn=2).rep == cy
    assert next_in_rotation([ann, bo, cy], last_turn=3).rep == ann


def test_an_inactive_rep_and_a_manager_are_skipped_with_their_reasons() -> None:
    ann, gone, boss, cy = rep(1), rep(2, active=False), rep(3, role="manager"), rep(4)
    decision = next_in_rotation([ann, gone, boss, cy], last_turn=1)
    assert decision.rep == cy
    assert decision.strategy == ROUND_ROBIN
    explanation = decision.explanation()
    assert explanation["territory"] == "default"
    assert explanation["strategy"] == "round_robin"
    assert [c["rep_id"] for c in explanation["candidates"]] == [str(ann.id), str(cy.id)]
    assert explanation["chosen"]["rep_id"] == str(cy.id)
    assert explanation["served_last"]["rep_id"] == str(ann.id)
    assert [(s["rep_id"], s["reason"]) for s in explanation["skipped"]] == [
        (str(gone.id), "inactive"),
        (str(boss.id), "manager"),
    ]
    assert decision.reason == "round robin in territory default: rep 2 of 2 eligible"


def test_a_rep_leaving_the_pool_moves_nobody_elses_turn() -> None:
    ann, bo, cy = rep(1), rep(2), rep(3)
    bo_away = RoutableRep(bo.id, bo.turn, bo.name, active=False)
    # Bo was served last, then deactivated: Cy is still next, not Ann.
    assert next_in_rotation([ann, bo_away, cy], last_turn=2).rep == cy


def test_with_no_eligible_rep_the_lead_goes_to_the_fallback_queue() -> None:
    decision = next_in_rotation([rep(1, active=False), rep(2, role="manager")], last_turn=None)
    assert decision.rep is None
    assert decision.strategy == FALLBACK_QUEUE
    assert decision.reason == (
        "no eligible rep in territory default (1 inactive, 1 manager): fallback queue"
    )
    assert decision.explanation()["chosen"] is None
    assert decision.explanation()["candidates"] == []


def test_with_no_reps_at_all_the_reason_says_so() -> None:
    decision = next_in_rotation([], last_turn=None)
    assert decision == RoutingDecision("default", FALLBACK_QUEUE, None, (), (), None)
    assert decision.reason == "no reps in territory default: fallback queue"


@given(
    eligible=st.integers(min_value=1, max_value=12),
    ineligible=st.lists(st.sampled_from(["inactive", "manager"]), max_size=6),
    leads=st.integers(min_value=0, max_value=200),
    seed=st.randoms(use_true_random=False),
)
def test_any_burst_of_leads_is_spread_evenly_and_cycles(
    eligible: int, ineligible: list[str], leads: int, seed: random.Random
) -> None:
    pool = [rep(0) for _ in range(eligible)]
    pool += [
        rep(0, active=False) if kind == "inactive" else rep(0, role=kind) for kind in ineligible
    ]
    seed.shuffle(pool)
    reps = [RoutableRep(r.id, turn, r.name, r.active, r.role) for turn, r in enumerate(pool)]
    in_order = [r for r in reps if r.skip_reason is None]

    chosen = route(reps, leads)

    assert None not in chosen
    served = Counter(r.id for r in chosen if r is not None)
    counts = [served[r.id] for r in in_order]
    assert sum(counts) == leads
    assert max(counts) - min(counts) <= 1
    assert chosen == [in_order[i % eligible] for i in range(leads)]
