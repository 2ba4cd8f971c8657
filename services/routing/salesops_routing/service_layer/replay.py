"""What a proposed ruleset would have done: routing a past window's leads again, in
memory, with the same decision code as the live path, and nothing kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_routing.adapters import repository
from salesops_routing.domain.assignment import Decision
from salesops_routing.service_layer.router import LeadInput, decide
from salesops_routing.service_layer.rulesets import Model
from salesops_routing.service_layer.state import load_state


async def replay(
    session: AsyncSession, model: Model, *, since: datetime, until: datetime, limit: int
) -> dict[str, Any]:
    leads = await repository.leads_received(session, since=since, until=until, limit=limit + 1)
    truncated = len(leads) > limit
    leads = leads[:limit]
    # Accounts and reps as they are now; rotations, capacity counts and open leads start
    # empty at the window's start and follow the replayed decisions only.
    inputs = [LeadInput(lead["attributes"]) for lead in leads]
    state = await load_state(session, model, inputs, now=until, lock=False, history=False)
    results: list[dict[str, Any]] = []
    for lead, lead_input in zip(leads, inputs, strict=True):
        at = lead["received_at"]
        decision = await decide(state, model, lead_input, now=at)
        state.kept(decision, at=at)
        results.append(_compare(lead, decision))
    return {"leads": len(results), "truncated": truncated, **_summary(results), "results": results}


def _compare(lead: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    actual = {
        "rep_id": lead["rep_id"],
        "territory_id": lead["territory_id"],
        "strategy": lead["strategy"],
    }
    proposed = {
        "rep_id": decision.rep_id,
        "rep_name": decision.rep_name,
        "territory_id": decision.territory_id,
        "strategy": decision.strategy,
        "reason": decision.reason,
    }
    changed = (actual["rep_id"], actual["territory_id"]) != (
        decision.rep_id,
        decision.territory_id,
    )
    return {
        "lead_id": lead["id"],
        "received_at": lead["received_at"],
        "actual": actual,
        "proposed": proposed,
        "changed": changed,
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    def tally(side: str, key: str) -> dict[str, int]:
        counts = Counter(str(r[side][key]) for r in results)
        return dict(counts.most_common())

    return {
        "changed": sum(r["changed"] for r in results),
        "by_territory": {
            "actual": tally("actual", "territory_id"),
            "proposed": tally("proposed", "territory_id"),
        },
        "by_rep": {"actual": tally("actual", "rep_id"), "proposed": tally("proposed", "rep_id")},
    }
