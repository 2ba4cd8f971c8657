"""Routing state read from PostgreSQL for a decision: locked for a real assignment,
read only for a simulation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.events import WorkingHours
from salesops_routing.adapters import models, repository
from salesops_routing.domain.accounts import choose_account, name_key
from salesops_routing.domain.ruleset import DEFAULT_TERRITORY, Member, Territory
from salesops_routing.domain.selection import Absence, MemberState, RepState, capacity_windows
from salesops_routing.service_layer.router import LeadInput, MatchedAccount
from salesops_routing.service_layer.rulesets import Model


def rep_state(
    row: Mapping[str, Any], counts: tuple[int, int] = (0, 0), open_leads: int = 0
) -> RepState:
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
        assigned_today=counts[0],
        assigned_this_week=counts[1],
        open_leads=open_leads,
    )


def resolve_members(
    members: Sequence[Member], reps: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], float]]:
    """Each member's rep row (members the roster does not know yet are left out)."""
    by_id = {r["id"]: r for r in reps}
    by_email = {str(r["email"]).lower(): r for r in reps if r.get("email")}
    out: list[tuple[Mapping[str, Any], float]] = []
    for member in members:
        row = by_id.get(member.rep_id) if member.rep_id else None
        if row is None and member.email:
            row = by_email.get(member.email.lower())
        if row is not None:
            out.append((row, member.weight))
    return out


class DbState:
    """``lock=True``: a real assignment — rotation rows (and capped reps) are locked until
    the transaction ends, so concurrent decisions never break the rotation or a cap."""

    def __init__(self, session: AsyncSession, *, lock: bool) -> None:
        self.session = session
        self.lock = lock

    async def matched_account(self, lead: LeadInput, *, threshold: float) -> MatchedAccount | None:
        candidates = await models.account_candidates(
            self.session,
            account_id=lead.account_id,
            domain=lead.domain,
            name_key=name_key(lead.company),
        )
        if not candidates:
            return None
        match = choose_account(
            lead_account_id=lead.account_id,
            lead_domain=lead.domain,
            lead_company=lead.company,
            candidates=candidates,
            threshold=threshold,
        )
        if match is None:
            return None
        row = await models.find_account(self.session, match.account.id)
        if row is None:
            return None
        return MatchedAccount(match, row["attributes"] or {}, row["territory_id"])

    async def rep(self, rep_id: UUID, *, now: datetime) -> RepState | None:
        rows = await repository.load_reps(self.session, ids=[rep_id])
        return rep_state(rows[0]) if rows else None

    async def members(
        self, model: Model, territory: Territory, *, now: datetime
    ) -> tuple[list[MemberState], float]:
        clock = (
            await repository.lock_rotation(self.session, territory.id)
            if self.lock
            else await repository.rotation_clock(self.session, territory.id)
        )
        if model.version == 0 and territory.id == DEFAULT_TERRITORY:
            rows: list[tuple[Mapping[str, Any], float]] = [
                (r, 1.0) for r in await repository.load_reps(self.session, everyone=True)
            ]
        else:
            reps = await repository.load_reps(
                self.session,
                ids=[m.rep_id for m in territory.members if m.rep_id],
                emails=[m.email for m in territory.members if m.email],
            )
            rows = resolve_members(territory.members, reps)
        return await self._states(territory, rows, now), clock

    async def _states(
        self, territory: Territory, rows: list[tuple[Mapping[str, Any], float]], now: datetime
    ) -> list[MemberState]:
        capped = sorted(
            (
                r["id"]
                for r, _ in rows
                if r["capacity_per_day"] is not None or r["capacity_per_week"] is not None
            ),
            key=str,
        )
        if self.lock:
            for rep_id in capped:
                await repository.lock_rep(self.session, rep_id)
        windows = {
            r["id"]: capacity_windows(r["time_zone"], now) for r, _ in rows if r["id"] in capped
        }
        counts = await repository.assignment_counts(self.session, windows)
        open_leads = (
            await repository.open_lead_counts(self.session, [r["id"] for r, _ in rows])
            if territory.strategy == "least_loaded"
            else {}
        )
        positions = await repository.rotation_positions(self.session, territory.id)
        return [
            MemberState(
                rep=rep_state(r, counts.get(r["id"], (0, 0)), open_leads.get(r["id"], 0)),
                weight=weight,
                position=positions.get(r["id"]),
            )
            for r, weight in rows
        ]
