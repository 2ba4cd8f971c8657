"""Safe to change: route a lead with no side effects, and replay a proposed ruleset over
a past window's leads against what actually happened."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from salesops_common.envelope import utcnow
from salesops_common.http import ApiError
from salesops_routing.domain.ruleset import Ruleset
from salesops_routing.service_layer import rulesets
from salesops_routing.service_layer.context import RoutingContext
from salesops_routing.service_layer.replay import replay
from salesops_routing.service_layer.router import LeadInput, decide
from salesops_routing.service_layer.state import load_state

REPLAY_LIMIT = 10_000


class LeadPayload(BaseModel):
    """A lead as ``lead.created`` carries it (the fields routing decides on)."""

    model_config = ConfigDict(extra="ignore")

    email: str | None = Field(None, max_length=320)
    company: str | None = Field(None, max_length=300)
    domain: str | None = Field(None, max_length=255)
    country: str | None = Field(None, max_length=2)
    region: str | None = Field(None, max_length=100)
    postal_code: str | None = Field(None, max_length=20)
    industry: str | None = Field(None, max_length=100)
    employees: int | None = Field(None, ge=0, le=10_000_000)
    annual_revenue: Decimal | None = Field(None, ge=0, le=Decimal("1e15"))
    lead_source: str | None = Field(None, max_length=100)
    account_id: UUID | None = None


class SimulateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: LeadPayload
    at: AwareDatetime | None = None  # when to route it (availability); default now
    ruleset: Ruleset | None = None  # a proposed model; default the one in force


class SimulatedDecision(BaseModel):
    ruleset_version: int | None  # null: the proposed model
    at: datetime
    rep_id: UUID | None
    rep_name: str | None
    territory_id: str | None
    strategy: str
    reason: str
    explanation: dict[str, Any]


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ruleset: Ruleset | None = None  # default: the model in force
    since: AwareDatetime
    until: AwareDatetime | None = None  # default now
    limit: int = Field(REPLAY_LIMIT, ge=1, le=REPLAY_LIMIT)

    @model_validator(mode="after")
    def _ordered(self) -> ReplayBody:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


def build_simulate_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1/routing", tags=["simulation"], dependencies=[Depends(ctx.require_token)]
    )

    @router.post("/simulate")
    async def simulate(body: SimulateBody) -> SimulatedDecision:
        """Where this lead would go now (or ``at``), with the full explanation. Nothing is
        stored, no rotation moves, nothing is published."""
        at = body.at or utcnow()
        async with ctx.uow() as session:
            model = await _model(session, body.ruleset)
            lead = LeadInput(body.lead.model_dump(mode="json", exclude_none=True))
            state = await load_state(session, model, [lead], now=at, lock=False)
            decision = await decide(state, model, lead, now=at)
        return SimulatedDecision(
            ruleset_version=model.version if body.ruleset is None else None,
            at=at,
            rep_id=decision.rep_id,
            rep_name=decision.rep_name,
            territory_id=decision.territory_id,
            strategy=decision.strategy,
            reason=decision.reason,
            explanation=decision.explanation,
        )

    @router.post("/replay")
    async def replay_window(body: ReplayBody) -> dict[str, Any]:
        """Route the leads received in [since, until) again under a proposed ruleset: who
        would have got what, and what differs from what happened. Rotations and capacity
        counts start empty at ``since``; reps' availability is judged at each lead's time."""
        until = body.until or utcnow()
        if until <= body.since:
            raise ApiError(422, "until must be after since")
        async with ctx.uow() as session:
            model = await _model(session, body.ruleset)
            result = await replay(session, model, since=body.since, until=until, limit=body.limit)
        return {"ruleset_version": None if body.ruleset else model.version, **result}

    return router


async def _model(session: Any, proposed: Ruleset | None) -> rulesets.Model:
    if proposed is None:
        return await rulesets.MODELS.current(session)
    findings = await rulesets.check(session, proposed)
    errors = [f.as_json() for f in findings if f.severity == "error"]
    if errors:
        raise ApiError(422, "the proposed ruleset has errors", details={"findings": errors})
    return rulesets.Model.compile(-1, proposed)
