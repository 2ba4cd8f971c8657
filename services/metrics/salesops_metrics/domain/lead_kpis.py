"""KPIs over leads: response time, speed to lead, conversion, assignments, SLA breaches."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from salesops_metrics.domain import reducers
from salesops_metrics.domain.business_hours import business_seconds
from salesops_metrics.domain.dimensions import Dims, assignment_dims, lead_dims
from salesops_metrics.domain.facts import AssignmentFact, Context, LeadFact, TouchFact
from salesops_metrics.domain.kpis import Measure, Observations

Clock = Callable[["LeadJourney"], float]


@dataclass(frozen=True)
class LeadFacts:
    leads: Sequence[LeadFact] = ()
    assignments: Sequence[AssignmentFact] = ()  # every assignment of the leads concerned
    touches: Sequence[TouchFact] = ()  # outbound activities on those leads
    breaches: Collection[tuple[UUID, UUID]] = frozenset()  # (lead_id, rep_id)


@dataclass(frozen=True)
class LeadJourney:
    """One lead from creation to its first assignment and its first touch."""

    lead: LeadFact
    created: datetime
    assignments: Sequence[AssignmentFact] = ()
    first_touch: TouchFact | None = None

    @property
    def latest(self) -> AssignmentFact | None:
        return max(self.assignments, key=_newest, default=None)

    @property
    def first_to_rep(self) -> datetime | None:
        return min((a.assigned_at for a in self.assignments if a.rep_id), default=None)


def _newest(assignment: AssignmentFact) -> tuple[datetime, str]:
    return assignment.event_time, str(assignment.event_id)


def _minutes(start: datetime, end: datetime | None) -> float:
    if end is None:
        return math.inf
    return max((end - start).total_seconds(), 0.0) / 60


def journeys(ctx: Context, facts: LeadFacts) -> list[LeadJourney]:
    """Leads created in the window, each with its assignments and first qualifying touch."""
    by_lead: dict[UUID, list[AssignmentFact]] = {}
    for assignment in facts.assignments:
        by_lead.setdefault(assignment.lead_id, []).append(assignment)
    touches: dict[UUID, list[TouchFact]] = {}
    for touch in facts.touches:
        touches.setdefault(touch.lead_id, []).append(touch)
    out = []
    for lead in facts.leads:
        if lead.created is None or not ctx.window.contains(lead.created):
            continue
        assigned = by_lead.get(lead.id, [])
        reps = {a.rep_id for a in assigned if a.rep_id}
        mine = [t for t in touches.get(lead.id, []) if t.rep_id in reps]
        first = min(mine, key=lambda t: (t.occurred, str(t.rep_id)), default=None)
        out.append(LeadJourney(lead, lead.created, assigned, first))
    return out


def response_minutes(journey: LeadJourney) -> float:
    touch = journey.first_touch
    return _minutes(journey.created, touch.occurred if touch else None)


def business_response_minutes(ctx: Context) -> Clock:
    def clock(journey: LeadJourney) -> float:
        touch = journey.first_touch
        if touch is None:
            return math.inf
        rep = ctx.reps.get(touch.rep_id)
        seconds = business_seconds(
            journey.created,
            touch.occurred,
            hours=rep.working_hours if rep else None,
            time_zone=rep.time_zone if rep else None,
        )
        return seconds / 60

    return clock


def speed_minutes(journey: LeadJourney) -> float:
    return _minutes(journey.created, journey.first_to_rep)


def _observed(ctx: Context, facts: LeadFacts) -> list[tuple[Dims, LeadJourney]]:
    return [(lead_dims(ctx, j.lead, j.latest), j) for j in journeys(ctx, facts)]


def _timed(clock: Callable[[Context], Clock]) -> Callable[[Context, LeadFacts], Observations]:
    def observe(ctx: Context, facts: LeadFacts) -> Observations:
        measure = clock(ctx)
        return [(dims, measure(j)) for dims, j in _observed(ctx, facts)]

    return observe


def calendar(_: Context) -> Clock:
    return response_minutes


def speed(_: Context) -> Clock:
    return speed_minutes


def _sla_met(ctx: Context, facts: LeadFacts) -> Observations:
    def met(journey: LeadJourney) -> bool:
        latest = journey.latest
        territory = latest.territory_id if latest else None
        sla = ctx.territories.sla_minutes.get(territory or "", ctx.default_sla_minutes)
        return response_minutes(journey) <= sla

    return [(dims, met(j)) for dims, j in _observed(ctx, facts)]


def _converted(ctx: Context, facts: LeadFacts) -> Observations:
    return [(dims, j.lead.converted) for dims, j in _observed(ctx, facts)]


_response = _timed(calendar)
_business_response = _timed(business_response_minutes)
_speed = _timed(speed)
lead_response_median = Measure[LeadFacts](_response, reducers.quantile(0.5))
lead_response_p90 = Measure[LeadFacts](_response, reducers.quantile(0.9))
lead_response_business_median = Measure[LeadFacts](_business_response, reducers.quantile(0.5))
lead_response_business_p90 = Measure[LeadFacts](_business_response, reducers.quantile(0.9))
speed_to_lead_median = Measure[LeadFacts](_speed, reducers.quantile(0.5))
speed_to_lead_p90 = Measure[LeadFacts](_speed, reducers.quantile(0.9))
within_sla = Measure[LeadFacts](_sla_met, reducers.share)
lead_to_deal = Measure[LeadFacts](_converted, reducers.share)


@dataclass(frozen=True)
class AssignmentFacts:
    """Every assignment of the leads that had one to a rep in the window, with those leads."""

    assignments: Sequence[AssignmentFact] = ()
    leads: Mapping[UUID, LeadFact] = field(default_factory=dict)
    breaches: Collection[tuple[UUID, UUID]] = frozenset()


def _first_reached(ctx: Context, facts: AssignmentFacts) -> Observations:
    by_lead: dict[UUID, list[AssignmentFact]] = {}
    for assignment in facts.assignments:
        by_lead.setdefault(assignment.lead_id, []).append(assignment)
    counted: Observations = []
    for lead_id, assigned in by_lead.items():
        first = min((a.assigned_at for a in assigned if a.rep_id), default=None)
        if ctx.window.contains(first):
            latest = max(assigned, key=_newest)
            counted.append((lead_dims(ctx, facts.leads.get(lead_id), latest), lead_id))
    return counted


def _breached(ctx: Context, facts: AssignmentFacts) -> Observations:
    return [
        (
            assignment_dims(ctx, a, facts.leads.get(a.lead_id)),
            (a.lead_id, a.rep_id) in facts.breaches,
        )
        for a in facts.assignments
        if a.rep_id is not None and ctx.window.contains(a.assigned_at)
    ]


leads_assigned = Measure[AssignmentFacts](_first_reached, reducers.count)
sla_breach_rate = Measure[AssignmentFacts](_breached, reducers.share)
