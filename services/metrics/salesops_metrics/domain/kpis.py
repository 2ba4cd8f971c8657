"""The KPIs metrics keeps: name, unit, the groupings each supports, and its definition,
word for word what the code computes (``GET /v1/kpis`` lists them; docs/metrics.md too).

Common to all: a window is half-open over the event time named in the definition; the
window ``all`` has no bounds. ``n`` is the number of observations behind a value. A value
with no data is null (never 0). Amounts are in the reporting currency: an amount without a
currency is taken to be in it, one in a currency with no exchange rate is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from salesops_metrics.domain.dimensions import DIMENSIONS, Dims

Basis = Literal[
    "deal_closed",
    "deal_created",
    "deal_open",
    "stage_entered",
    "lead_created",
    "assigned",
    "activity",
    "forecast",
    "quota",
    "lead_events",
    "dead_letters",
]
DEAL_GROUPS = ("territory", "rep", "team", "manager", "source", "segment")
LEAD_GROUPS = DEAL_GROUPS
REP_GROUPS = ("tool", "territory", "rep", "team", "manager")
SCOPE_GROUPS = ("territory", "team", "rep")


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    unit: str
    basis: Basis
    group_by: tuple[str, ...]
    definition: str
    # Counters (all time, no labels) keep the names they had: deals_won_total, ...
    counter: bool = False

    def supports(self, group_by: str | None) -> bool:
        return group_by is None or group_by in self.group_by


def _kpi(
    name: str,
    unit: str,
    basis: Basis,
    group_by: Sequence[str],
    definition: str,
    *,
    counter: bool = False,
) -> KpiDefinition:
    assert set(group_by) <= set(DIMENSIONS), group_by
    return KpiDefinition(name, unit, basis, tuple(group_by), " ".join(definition.split()), counter)


_CLOSED = """Deals count once each, by their newest outcome (deal.won or deal.lost, by event
time; a deal.stage_changed after it re-opens the deal); deleted deals never count. A deal is
closed at its closed_at, else at the event time of its outcome."""
_RESPONSE = """Leads (not merged into another, not deleted) created in the window (created_at,
else the event time of lead.created). A lead's response time runs from its creation to the
first outbound activity.logged on it by a rep it was assigned to (lead.assigned or
lead.reassigned, any time), clamped at 0. A lead never so touched is unresponded: it counts as
an infinitely long time, not as zero, so the percentile is null (Prometheus: +Inf) when it
falls among unresponded leads. numerator = responded leads, denominator = n = leads."""
_BUSINESS = """Business time counts only the responding rep's working hours in the rep's time
zone (default 09:00-17:00 Monday to Friday, UTC)."""
_SPEED = """Leads (not merged, not deleted) created in the window; speed to lead runs from the
lead's creation to its first assignment to a rep (lead.assigned or lead.reassigned with a rep;
the fallback queue does not count), clamped at 0. A lead never assigned to a rep counts as
infinitely long. numerator = assigned leads, denominator = n = leads."""
_CYCLE = """Deals won in the window (by close time); a deal's cycle is the days from its
created_at (else its deal.created event time) to its close, clamped at 0; deals with no known
creation are left out."""
_FORECAST = """Closed periods: fiscal months and quarters that ended within the window and by
now, and of each kind the newest that ended by the window's end and by now, even before the
window began (the last 30 days judge at least last month and last quarter; the month window,
last month). For each period and scope, the forecast is the point of the latest forecast.published
(by as_of) whose as_of is before the period began; actual = the amount of deals won with a
close time in the period, in that scope (company: all; team: the owner's team; rep: the owner;
territory: the deal's territory)."""
_SCOPES = """group_by none reads the company scope; team, territory and rep read those
scopes."""

KPIS: dict[str, KpiDefinition] = {
    k.name: k
    for k in (
        _kpi(
            "win_rate",
            "ratio",
            "deal_closed",
            DEAL_GROUPS,
            f"""Deals won / (deals won + deals lost), among deals closed in the window.
            {_CLOSED} numerator = won, denominator = n = closed.""",
        ),
        _kpi(
            "win_rate_by_value",
            "ratio",
            "deal_closed",
            DEAL_GROUPS,
            f"""Amount of deals won / amount of deals won and lost, among deals closed in the
            window, in the reporting currency. {_CLOSED} Deals with no amount, or one in a
            currency with no rate, are left out. numerator and denominator are those amounts;
            n = deals counted.""",
        ),
        _kpi(
            "deals_won",
            "deals",
            "deal_closed",
            DEAL_GROUPS,
            f"Deals whose outcome is won, closed in the window. {_CLOSED}",
            counter=True,
        ),
        _kpi(
            "deals_lost",
            "deals",
            "deal_closed",
            DEAL_GROUPS,
            f"Deals whose outcome is lost, closed in the window. {_CLOSED}",
            counter=True,
        ),
        _kpi(
            "sales_cycle_mean",
            "days",
            "deal_closed",
            DEAL_GROUPS,
            f"""Mean sales cycle. {_CYCLE} numerator = the days summed, denominator = n =
            deals.""",
        ),
        _kpi(
            "sales_cycle_median",
            "days",
            "deal_closed",
            DEAL_GROUPS,
            f"""Median sales cycle (the mean of the middle two for an even count). {_CYCLE}
            numerator = denominator = n = deals.""",
        ),
        _kpi(
            "sales_cycle_p90",
            "days",
            "deal_closed",
            DEAL_GROUPS,
            f"""90th percentile of the sales cycle (linear between closest ranks, numpy's
            default). {_CYCLE} numerator = denominator = n = deals.""",
        ),
        _kpi(
            "deal_conversion",
            "ratio",
            "deal_created",
            DEAL_GROUPS,
            """Deals created in the window (created_at, else the deal.created event time)
            whose outcome is now won / all of them, deleted deals left out. numerator = won,
            denominator = n = deals created.""",
        ),
        _kpi(
            "stage_conversion",
            "ratio",
            "stage_entered",
            DEAL_GROUPS,
            """For each pair of stages (group keys from_stage, to_stage): deals whose next
            stage after from_stage was to_stage / deals that entered from_stage in the window.
            A deal enters a stage with each deal.created, deal.updated, deal.stage_changed,
            deal.won or deal.lost that states a stage (won and lost without one enter 'won'
            and 'lost'), at the event time; entries are ordered by event time, then event id,
            and a repeat of the current stage is no new entry. Deleted deals are left out.
            n = the deals that entered from_stage.""",
        ),
        _kpi(
            "pipeline_value",
            "amount",
            "deal_open",
            DEAL_GROUPS,
            """Amount of open deals (no outcome, not deleted) created in the window, by
            current stage (group key stage), in the reporting currency; deals with no amount
            or an amount that cannot be converted are left out. n = deals counted.""",
        ),
        _kpi(
            "pipeline_coverage",
            "ratio",
            "quota",
            SCOPE_GROUPS,
            f"""For each quota (PUT /v1/quotas) whose period overlaps the window: the amount of
            open deals in the quota's scope expected to close in the period (expected_close_date;
            a deal with none counts in the period that contains now) / the quota, both in the
            reporting currency. Group keys period and the scope. {_SCOPES} numerator = the
            pipeline, denominator = the quota, n = deals counted.""",
        ),
        _kpi(
            "lead_response_median",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"Median lead response time, calendar minutes. {_RESPONSE}",
        ),
        _kpi(
            "lead_response_p90",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"90th percentile lead response time, calendar minutes. {_RESPONSE}",
        ),
        _kpi(
            "lead_response_business_median",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"Median lead response time in business minutes. {_RESPONSE} {_BUSINESS}",
        ),
        _kpi(
            "lead_response_business_p90",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"90th percentile lead response time in business minutes. {_RESPONSE} {_BUSINESS}",
        ),
        _kpi(
            "lead_response_within_sla",
            "ratio",
            "lead_created",
            LEAD_GROUPS,
            f"""Leads responded to within the SLA (calendar minutes; the first_touch_minutes of
            the territory of the lead's newest assignment in the newest ruleset, else the
            SALESOPS_METRICS_RESPONSE_SLA_MINUTES setting) / leads; an unresponded lead is not
            within. {_RESPONSE}""",
        ),
        _kpi(
            "speed_to_lead_median",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"Median speed to lead, minutes. {_SPEED}",
        ),
        _kpi(
            "speed_to_lead_p90",
            "minutes",
            "lead_created",
            LEAD_GROUPS,
            f"90th percentile speed to lead, minutes. {_SPEED}",
        ),
        _kpi(
            "lead_to_deal_conversion",
            "ratio",
            "lead_created",
            LEAD_GROUPS,
            """Leads (not merged, not deleted) created in the window that converted (a
            lead.converted, or a deal whose lead_id names the lead) / those leads.
            numerator = converted, denominator = n = leads.""",
        ),
        _kpi(
            "leads_assigned",
            "leads",
            "assigned",
            LEAD_GROUPS,
            """Distinct leads whose first assignment to a rep (lead.assigned or
            lead.reassigned with a rep, earliest assigned_at) falls in the window; a lead
            counts once however often it is reassigned, and a lead only ever in the fallback
            queue (no rep) is not counted.""",
            counter=True,
        ),
        _kpi(
            "sla_breach_rate",
            "ratio",
            "assigned",
            LEAD_GROUPS,
            """Assignments of a lead to a rep (lead.assigned or lead.reassigned with a rep)
            made in the window (assigned_at) for which a lead.sla_breached names the same lead
            and rep / those assignments. rep, team, manager and territory are the
            assignment's. numerator = breached, denominator = n = assignments.""",
        ),
        _kpi(
            "technology_adoption",
            "ratio",
            "activity",
            REP_GROUPS,
            """For each tool (group key tool, or pooled over tools): selling reps whose
            licensed_tools include the tool and who logged at least one activity through it
            (activity.logged tool, occurred_at in the window) / selling reps whose
            licensed_tools include it. Selling reps: active true, and role not manager
            (managers never work leads; a rep with no role counts, and so does a rep with
            reports whose role is rep). Tools compare case-blind. Grouped by a rep
            dimension, the (rep, tool) pairs of the group are pooled. n = licensed (rep, tool)
            pairs.""",
        ),
        _kpi(
            "forecast_accuracy",
            "ratio",
            "forecast",
            SCOPE_GROUPS,
            f"""1 - |actual - forecast| / actual for each closed period and scope (group keys
            period and the scope); null when actual is 0. {_FORECAST} {_SCOPES}
            numerator = |actual - forecast|, denominator = actual, n = 1.""",
        ),
        _kpi(
            "forecast_wape",
            "ratio",
            "forecast",
            SCOPE_GROUPS,
            f"""Weighted absolute percentage error across the scopes of each closed period
            (group keys period and scope): sum |actual - forecast| / sum actual. {_FORECAST}
            {_SCOPES} n = scopes with a forecast.""",
        ),
        _kpi(
            "forecast_bias",
            "ratio",
            "forecast",
            SCOPE_GROUPS,
            f"""Forecast bias across the scopes of each closed period (group keys period and
            scope): sum (forecast - actual) / sum actual; above 0 forecasts too high.
            {_FORECAST} {_SCOPES} n = scopes with a forecast.""",
        ),
        _kpi(
            "duplicate_rate",
            "ratio",
            "lead_events",
            (),
            """Duplicate leads ingest found (lead.merged, except merges the CRM itself made,
            rule crm_merge) / new leads (lead.created + those lead.merged), by event time in
            the window, as ingest counts its duplicate rate.""",
        ),
        _kpi(
            "dead_letters",
            "records",
            "dead_letters",
            (),
            """Distinct events on the dead-letter topics (<topic>.dlq: records a consumer of
            any service could not apply), by the event's time in the window. An event counts
            once however many services dead-lettered it: by its id, and a record no one could
            read by its topic, partition and offset (its time is the record's timestamp).""",
            counter=True,
        ),
    )
}


@dataclass(frozen=True)
class KpiValue:
    """A KPI's value with what it was computed from; ``n`` is how many observations."""

    value: float | None
    numerator: float | None
    denominator: float | None
    n: int

    def as_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "n": self.n,
        }


@dataclass(frozen=True)
class GroupRow:
    group: dict[str, str | None]
    value: KpiValue


T = TypeVar("T")
F = TypeVar("F")
Observations = list[tuple[Dims, Any]]


@dataclass(frozen=True)
class Measure(Generic[F]):
    """A KPI as observations (worked out once per request or scrape) and how one group's
    observations become a value; grouping them again costs one pass."""

    observe: Callable[[Any, F], Observations]
    reduce: Callable[[list[Any]], KpiValue]
    inherent: tuple[str, ...] = ()

    def rows(self, observations: Observations, by: str | None) -> list[GroupRow]:
        return grouped(observations, by=by, reduce=self.reduce, inherent=self.inherent)

    def __call__(self, ctx: Any, facts: F, by: str | None) -> list[GroupRow]:
        return self.rows(self.observe(ctx, facts), by)


def group_keys(by: str | None, inherent: Sequence[str] = ()) -> list[str]:
    return [*inherent, *([by] if by else [])]


def buckets(
    observations: Iterable[tuple[Dims, T]], keys: Sequence[str]
) -> dict[tuple[str | None, ...], list[T]]:
    found: dict[tuple[str | None, ...], list[T]] = {}
    for dims, payload in observations:
        found.setdefault(tuple(dims.get(k) for k in keys), []).append(payload)
    return found


def grouped(
    observations: Iterable[tuple[Dims, T]],
    *,
    by: str | None,
    reduce: Callable[[list[T]], KpiValue],
    inherent: Sequence[str] = (),
) -> list[GroupRow]:
    """One row per group: the ``inherent`` keys (a stage, a period) plus ``by``. Without any
    key there is always exactly one row, so "no data" reads as a null value."""
    keys = group_keys(by, inherent)
    found = buckets(observations, keys)
    if not keys:
        return [GroupRow({}, reduce(found.get((), [])))]
    rows = [
        GroupRow(dict(zip(keys, key, strict=True)), reduce(items)) for key, items in found.items()
    ]
    return sorted_rows(rows)


def sorted_rows(rows: list[GroupRow]) -> list[GroupRow]:
    """Groups in a stable order: by each key's value, unknown (null) last."""
    return sorted(rows, key=lambda row: tuple((v is None, v or "") for v in row.group.values()))
