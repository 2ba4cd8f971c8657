"""Routing state for a set of decisions: read from PostgreSQL in a handful of statements,
then kept in memory while the decisions are made one after the other.

A consumer batch of new leads loads everything its decisions may look at at once — the
accounts the leads may belong to, the reps, the rotations of every territory in reach
(locked for a real assignment, in one order, so that copies of the service in one
consumer group take turns), capacity counts and open leads — and each decision then sees
the ones made before it (:meth:`MemoryState.kept`). A simulation loads the same without
locks; a replay starts rotations and counts empty at its window's start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import driver_connection
from salesops_common.events import WorkingHours
from salesops_routing.adapters import decisions
from salesops_routing.adapters.decisions import AccountKey, AccountRow
from salesops_routing.domain.accounts import choose_account, name_key
from salesops_routing.domain.assignment import Decision
from salesops_routing.domain.ruleset import DEFAULT_TERRITORY, Member, Territory
from salesops_routing.domain.selection import Absence, MemberState, RepState, capacity_windows
from salesops_routing.service_layer.router import LeadInput, MatchedAccount, reach
from salesops_routing.service_layer.rulesets import Model


def rep_state(row: Mapping[str, Any]) -> RepState:
    """A rep's standing attributes (counts are the state's to add)."""
    hours = row.get("working_hours")
    return RepState(
        id=row["id"],
        order=row["turn"],
        name=row.get("name"),
        active=bool(row.get("active", True)),
        role=row.get("role"),
        time_zone=row.get("time_zone"),
        working_hours=WorkingHours.model_validate(hours) if hours else None,
        out_of_office=tuple(
            Absence(
                datetime.fromisoformat(a["starts_at"]),
                datetime.fromisoformat(a["ends_at"]),
                a.get("note"),
            )
            for a in row.get("out_of_office") or []
        ),
        capacity_per_day=row.get("capacity_per_day"),
        capacity_per_week=row.get("capacity_per_week"),
    )


@dataclass
class _SeenMembers:
    territory: Territory  # the model's object: another model's territory of that id differs
    now: datetime
    members: list[MemberState]
    places: dict[UUID, list[int]]  # where each rep sits in ``members``
    kept: int  # how many kept decisions ``members`` reflects


def account_key(lead: LeadInput) -> AccountKey:
    return (lead.account_id, lead.domain, name_key(lead.company))


@dataclass
class Rotation:
    clock: float = 0.0
    positions: dict[UUID, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RotationChanges:
    clocks: dict[str, float]
    positions: dict[tuple[str, UUID], float]


class MemoryState:
    """The :class:`~salesops_routing.service_layer.router.RoutingState` of a set of
    decisions, in memory. ``accounts``: each lead's candidate accounts, by
    :func:`account_key`; a lead not loaded matches none."""

    def __init__(self, accounts: Mapping[AccountKey, Sequence[AccountRow]] | None = None) -> None:
        self._reps: dict[UUID, RepState] = {}
        self._by_email: dict[str, UUID] = {}
        self._everyone: list[UUID] = []
        self._accounts = accounts or {}
        # Each lead's account is matched once: to load what its decision needs, then for it.
        self._matched: dict[tuple[Any, ...], MatchedAccount | None] = {}
        self.rotations: dict[str, Rotation] = {}
        self.assigned: Counter[tuple[UUID, datetime]] = Counter()  # (rep, window start)
        self.open_leads: Counter[UUID] = Counter()
        self._changed: set[tuple[str, UUID]] = set()
        # The members of each territory as the last decision there saw them, and the reps
        # every kept decision changed since (a rep's counts and position change only when a
        # decision gives them a lead): each decision rebuilds only those, not the whole team
        # (with 100 reps in a territory, rebuilding it was half of routing's CPU a lead).
        self._kept_reps: list[UUID] = []
        self._seen: dict[str, _SeenMembers] = {}  # by territory id

    # -- RoutingState -----------------------------------------------------------------------

    def add_reps(self, reps: Sequence[Mapping[str, Any]]) -> None:
        self._reps.update((r["id"], rep_state(r)) for r in reps)
        self._by_email.update((str(r["email"]).lower(), r["id"]) for r in reps if r.get("email"))
        self._everyone = [r.id for r in sorted(self._reps.values(), key=lambda r: r.order)]

    async def matched_account(self, lead: LeadInput, *, threshold: float) -> MatchedAccount | None:
        memo = (lead.account_id, lead.domain, lead.company, threshold)
        if memo not in self._matched:
            self._matched[memo] = self._match_account(lead, threshold)
        return self._matched[memo]

    def _match_account(self, lead: LeadInput, threshold: float) -> MatchedAccount | None:
        rows = self._accounts.get(account_key(lead))
        if not rows:
            return None
        match = choose_account(
            lead_account_id=lead.account_id,
            lead_domain=lead.domain,
            lead_company=lead.company,
            candidates=[candidate for candidate, _, _ in rows],
            threshold=threshold,
        )
        if match is None:
            return None
        attributes, territory_id = next((a, t) for c, a, t in rows if c.id == match.account.id)
        return MatchedAccount(match, attributes, territory_id)

    async def rep(self, rep_id: UUID, *, now: datetime) -> RepState | None:
        return self._reps.get(rep_id)

    async def members(
        self, model: Model, territory: Territory, *, now: datetime
    ) -> tuple[list[MemberState], float]:
        rotation = self.rotations.get(territory.id) or Rotation()
        seen = self._seen.get(territory.id)
        if seen is None or seen.territory is not territory or seen.now != now:
            if model.version == 0 and territory.id == DEFAULT_TERRITORY:
                seats = [(rep_id, 1.0) for rep_id in self._everyone]
            else:
                seats = self.resolve(territory.members)
            members = [self._member(rep_id, weight, rotation, now) for rep_id, weight in seats]
            seen = _SeenMembers(territory, now, members, {}, len(self._kept_reps))
            for i, (rep_id, _) in enumerate(seats):
                seen.places.setdefault(rep_id, []).append(i)
            self._seen[territory.id] = seen
        elif seen.kept < len(self._kept_reps):
            for rep_id in set(self._kept_reps[seen.kept :]):
                for i in seen.places.get(rep_id, ()):
                    weight = seen.members[i].weight
                    seen.members[i] = self._member(rep_id, weight, rotation, now)
            seen.kept = len(self._kept_reps)
        return list(seen.members), rotation.clock

    def _member(
        self, rep_id: UUID, weight: float, rotation: Rotation, now: datetime
    ) -> MemberState:
        return MemberState(
            rep=self._counted(self._reps[rep_id], now),
            weight=weight,
            position=rotation.positions.get(rep_id),
        )

    # -- what the decisions change ----------------------------------------------------------

    def kept(self, decision: Decision, *, at: datetime) -> None:
        """Count a decision that is kept, so that the next one sees it."""
        if decision.rep_id is None:
            return
        rep = self._reps.get(decision.rep_id)
        day, week = capacity_windows(rep.time_zone if rep else None, at)
        self.assigned[(decision.rep_id, day)] += 1
        if week != day:
            self.assigned[(decision.rep_id, week)] += 1
        self.open_leads[decision.rep_id] += 1
        self._kept_reps.append(decision.rep_id)
        if decision.rotation is not None:
            territory, rep_id, position, clock = decision.rotation
            rotation = self.rotations.setdefault(territory, Rotation())
            rotation.positions[rep_id] = position
            rotation.clock = clock
            self._changed.add((territory, rep_id))

    def rotation_changes(self) -> RotationChanges:
        return RotationChanges(
            clocks={t: self.rotations[t].clock for t, _ in self._changed},
            positions={(t, r): self.rotations[t].positions[r] for t, r in self._changed},
        )

    # -- helpers ----------------------------------------------------------------------------

    def resolve(self, members: Iterable[Member]) -> list[tuple[UUID, float]]:
        """Each member's rep id (members the roster does not know yet are left out)."""
        out: list[tuple[UUID, float]] = []
        for member in members:
            rep_id = member.rep_id if member.rep_id in self._reps else None
            if rep_id is None and member.email:
                rep_id = self._by_email.get(member.email.lower())
            if rep_id is not None:
                out.append((rep_id, member.weight))
        return out

    def everyone(self) -> list[UUID]:
        return list(self._everyone)

    def rep_known(self, rep_id: UUID) -> RepState | None:
        return self._reps.get(rep_id)

    def _counted(self, rep: RepState, now: datetime) -> RepState:
        capped = rep.capacity_per_day is not None or rep.capacity_per_week is not None
        open_leads = self.open_leads.get(rep.id, 0)
        if not capped:
            return replace(rep, open_leads=open_leads) if open_leads else rep
        day, week = capacity_windows(rep.time_zone, now)
        return replace(
            rep,
            assigned_today=self.assigned[(rep.id, day)],
            assigned_this_week=self.assigned[(rep.id, week)],
            open_leads=open_leads,
        )


async def load_state(
    session: AsyncSession,
    model: Model,
    leads: Sequence[LeadInput],
    *,
    now: datetime,
    lock: bool,
    history: bool = True,
) -> MemoryState:
    """What deciding ``leads`` at ``now`` may look at, in a few statements.

    ``lock``: a real assignment — the rotation rows of every territory in reach, and the
    capped reps among their members, stay locked until the transaction ends, so concurrent
    decisions never break a rotation or a cap. ``history=False``: rotations, capacity counts
    and open leads start empty (a replay's window start).
    """
    conn = await driver_connection(session)
    accounts: dict[AccountKey, list[AccountRow]] = {}
    matching = model.ruleset.account_matching
    if matching.enabled:
        keys = list(dict.fromkeys(account_key(lead) for lead in leads))
        accounts = await decisions.account_candidates(conn, keys)
    state = MemoryState(accounts)
    territories: dict[str, Territory] = {}
    owners: set[UUID] = set()
    for lead in leads:
        account = None
        if matching.enabled:
            account = await state.matched_account(lead, threshold=matching.fuzzy_name_threshold)
        if account is not None and account.match.account.owner_id is not None:
            owners.add(account.match.account.owner_id)
        territories.update((t.id, t) for t in reach(model, lead, account))
    everyone = model.version == 0 and DEFAULT_TERRITORY in territories
    members = [m for t in territories.values() for m in t.members]
    rows = await decisions.load_reps(
        conn,
        ids={*(m.rep_id for m in members if m.rep_id), *owners},
        emails={m.email for m in members if m.email},
        everyone=everyone,
    )
    state.add_reps(rows)
    if not history or not territories:
        return state
    ids = sorted(territories)
    clocks = await (decisions.lock_rotations if lock else decisions.rotation_clocks)(conn, ids)
    positions = await decisions.rotation_positions(conn, ids)
    for territory_id in ids:
        state.rotations[territory_id] = Rotation(
            clocks.get(territory_id, 0.0), positions.get(territory_id, {})
        )

    def seats(territory: Territory) -> list[UUID]:
        if everyone and territory.id == DEFAULT_TERRITORY:
            return state.everyone()
        return [rep_id for rep_id, _ in state.resolve(territory.members)]

    await _seed_counts(
        conn, state, {r for t in territories.values() for r in seats(t)}, now=now, lock=lock
    )
    least_loaded = {
        r for t in territories.values() if t.strategy == "least_loaded" for r in seats(t)
    }
    if least_loaded:
        state.open_leads.update(await decisions.open_lead_counts(conn, least_loaded))
    return state


async def _seed_counts(
    conn: asyncpg.Connection,
    state: MemoryState,
    seated: Iterable[UUID],
    *,
    now: datetime,
    lock: bool,
) -> None:
    """Today's and this week's assignments of the capped reps, locked when deciding for real
    (decisions from different territories give leads to one rep)."""
    windows: dict[UUID, tuple[datetime, datetime]] = {}
    for rep_id in seated:
        rep = state.rep_known(rep_id)
        if rep and (rep.capacity_per_day is not None or rep.capacity_per_week is not None):
            windows[rep_id] = capacity_windows(rep.time_zone, now)
    if not windows:
        return
    if lock:
        await decisions.lock_reps(conn, windows)
    for rep_id, (today, week) in (await decisions.assignment_counts(conn, windows)).items():
        day, monday = windows[rep_id]
        state.assigned[(rep_id, day)] = today
        state.assigned[(rep_id, monday)] = week
