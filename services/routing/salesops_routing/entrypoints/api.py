"""Routing's REST API: a lead's assignment with its explanation, and reps' routing
attributes (capacity, out of office, working hours)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from salesops_common.db import driver_connection
from salesops_common.events import WorkingHours
from salesops_common.http import ApiError
from salesops_routing.adapters import decisions, repository
from salesops_routing.domain.availability import clock_minutes
from salesops_routing.service_layer.context import RoutingContext


class HistoryEntry(BaseModel):
    kind: str
    rep_id: UUID | None
    territory_id: str | None
    strategy: str
    reason: str
    assigned_at: datetime


class AssignmentView(BaseModel):
    lead_id: UUID
    rep_id: UUID | None  # null: the lead waits in the fallback queue
    territory_id: str | None
    strategy: str
    ruleset_version: int
    reason: str
    assigned_at: datetime
    status: str  # open, converted, disqualified, deleted, merged
    reassignments: int
    previous_rep_id: UUID | None
    explanation: dict[str, Any]
    history: list[HistoryEntry]


class AbsenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    note: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> AbsenceBody:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RoutingAttributes(BaseModel):
    """What routing's admins set on a rep; a field left out stays as it is, a null clears."""

    model_config = ConfigDict(extra="forbid")

    capacity_per_day: int | None = Field(None, ge=0, le=100_000)
    capacity_per_week: int | None = Field(None, ge=0, le=1_000_000)
    out_of_office: list[AbsenceBody] | None = Field(None, max_length=100)
    working_hours: WorkingHours | None = None
    time_zone: str | None = None
    active: bool | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: WorkingHours | None) -> WorkingHours | None:
        if value is not None:
            for clock in (value.start, value.end):
                if clock_minutes(clock) is None:  # as routing reads them: 24:00 ends the day
                    raise ValueError(f"{clock!r} is not HH:MM (00:00 to 24:00)")
            if not value.days or any(d < 1 or d > 7 for d in value.days):
                raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        return value


class RepView(BaseModel):
    id: UUID
    name: str | None
    email: str | None
    active: bool
    role: str | None
    team: str | None
    time_zone: str | None
    manager_id: UUID | None
    working_hours: WorkingHours | None
    capacity_per_day: int | None
    capacity_per_week: int | None
    out_of_office: list[AbsenceBody]
    rotation_turn: int
    assigned_leads: int
    open_leads: int


class Roster(BaseModel):
    reps: list[RepView]


def _rep_view(row: dict[str, Any]) -> RepView:
    return RepView.model_validate({**row, "rotation_turn": row["turn"]})


def build_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["routing"], dependencies=[Depends(ctx.require_token)])

    @router.get("/assignments/{lead_id}")
    async def get_assignment(lead_id: UUID) -> AssignmentView:
        """Who a lead was assigned to, by which strategy, why each other candidate was
        skipped, and every earlier decision about it (404 until it is assigned)."""
        async with ctx.uow() as session:
            found = await repository.find_assignment(session, lead_id)
            history = await repository.assignment_history(session, lead_id) if found else []
            conn = await driver_connection(session)
            withdrawn = None if found else (await decisions.withdrawal_reasons(conn, [lead_id]))
        if found is None:
            raise _not_assigned(withdrawn.get(lead_id) if withdrawn else None)
        return AssignmentView.model_validate({**found, "history": history})

    @router.get("/reps")
    async def list_reps() -> Roster:
        """Every rep with their routing attributes and leads, in rotation order."""
        async with ctx.uow() as session:
            rows = await repository.reps_with_assignment_counts(session)
        return Roster(reps=[_rep_view(r) for r in rows])

    @router.get("/reps/{rep_id}")
    async def get_rep(rep_id: UUID) -> RepView:
        async with ctx.uow() as session:
            row = await repository.find_rep(session, rep_id)
        if row is None:
            raise ApiError(404, "no such rep (reps come from the CRM's rep events)")
        return _rep_view(row)

    @router.patch("/reps/{rep_id}/routing")
    async def set_routing_attributes(rep_id: UUID, body: RoutingAttributes) -> RepView:
        """Set a rep's capacity caps, out-of-office periods, working hours, time zone or
        active flag. Deactivating a rep here does not reassign their leads; the CRM's
        deactivation (rep.updated) does."""
        stated = body.model_dump(mode="json", exclude_unset=True)
        if stated.get("out_of_office") is None and "out_of_office" in stated:
            stated["out_of_office"] = []
        async with ctx.uow() as session:
            if await repository.rep_is_active(session, rep_id) is None:
                raise ApiError(404, "no such rep (reps come from the CRM's rep events)")
            await repository.save_rep(session, rep_id, stated)
            row = await repository.find_rep(session, rep_id)
        assert row is not None
        return _rep_view(row)

    return router


def _not_assigned(withdrawn: str | None) -> ApiError:
    if withdrawn is None:
        return ApiError(404, "the lead has no assignment (yet)")
    return ApiError(
        404, f"the lead was {withdrawn}: it is never routed", details={"withdrawn": withdrawn}
    )
