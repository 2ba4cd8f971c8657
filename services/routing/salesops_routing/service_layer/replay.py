"""What a proposed ruleset would have done: routing a past window's leads again, in
memory, with the same decision code as the live path, and nothing kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_routing.adapters import repository
from salesops_routing.domain.assignment import Decision
from salesops_routing.domain.ruleset import DEFAULT_TERRITORY, Territory
from salesops_routing.domain.selection import MemberState, RepState, capacity_windows
from salesops_routing.service_layer.router import LeadInput, MatchedAccount, decide
from salesops_routing.service_layer.rulesets import Model
from salesops_routing.service_layer.state import DbState, rep_state, resolve_members


@dataclass
class _Rotation:
    clock: float = 0.0
    positions: dict[UUID, float] = field(default_factory=dict)


class ReplayState:
    """Accounts and reps as they are now; rotations, capacity counts and open leads start
    empty at the window's start and follow the replayed decisions only."""

    def __init__(self, session: AsyncSession) -> None:
        self._db = DbState(session, lock=False)
        self._session = session
        self._reps: list[dict[str, Any]] | None = None
        self._rotations: dict[str, _Rotation] = {}
        self._assigned: Counter[tuple[UUID, datetime]] = Counter()
        self._open: Counter[UUID] = Counter()

    async def matched_account(self, lead: LeadInput, *, threshold: float) -> MatchedAccount | None:
        return await self._db.matched_account(lead, threshold=threshold)

    async def rep(self, rep_id: UUID, *, now: datetime) -> RepState | None:
        return await self._db.rep(rep_id, now=now)

    async def members(
        self, model: Model, territory: Territory, *, now: datetime
    ) -> tuple[list[MemberState], float]:
        if self._reps is None:
            self._reps = await repository.load_reps(self._session, everyone=True)
        if model.version == 0 and territory.id == DEFAULT_TERRITORY:
            rows: list[tuple[Mapping[str, Any], float]] = [(r, 1.0) for r in self._reps]
        else:
            rows = resolve_members(territory.members, self._reps)
        rotation = self._rotations.setdefault(territory.id, _Rotation())
        states = []
        for row, weight in rows:
            day, week = capacity_windows(row["time_zone"], now)
            counts = (self._assigned[(row["id"], day)], self._assigned[(row["id"], week)])
            states.append(
                MemberState(
                    rep=rep_state(row, counts, self._open[row["id"]]),
                    weight=weight,
                    position=rotation.positions.get(row["id"]),
                )
            )
        return states, rotation.clock

    def kept(self, decision: Decision, *, at: datetime, time_zone: str | None) -> None:
        if decision.rep_id is None:
            return
        day, week = capacity_windows(time_zone, at)
        self._assigned[(decision.rep_id, day)] += 1
        if week != day:
            self._assigned[(decision.rep_id, week)] += 1
        self._open[decision.rep_id] += 1
        if decision.rotation is not None:
            territory, rep_id, position, clock = decision.rotation
            rotation = self._rotations.setdefault(territory, _Rotation())
            rotation.positions[rep_id] = position
            rotation.clock = clock

    def time_zone(self, rep_id: UUID | None) -> str | None:
        for row in self._reps or []:
            if row["id"] == rep_id:
                zone: str | None = row["time_zone"]
                return zone
        return None


async def replay(
    session: AsyncSession, model: Model, *, since: datetime, until: datetime, limit: int
) -> dict[str, Any]:
    leads = await repository.leads_received(session, since=since, until=until, limit=limit + 1)
    truncated = len(leads) > limit
    state = ReplayState(session)
    results: list[dict[str, Any]] = []
    for lead in leads[:limit]:
        at = lead["received_at"]
        decision = await decide(state, model, LeadInput(lead["attributes"]), now=at)
        state.kept(decision, at=at, time_zone=state.time_zone(decision.rep_id))
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
