"""Computing KPIs for one read (a request or a scrape): what every KPI reads besides its own
rows once (rates, reps and their dimensions, the territory model), then each family of KPIs
(the KPIs of one basis) in one statement for every grouping asked of it, worked out and
grouped in PostgreSQL (adapters/aggregates.py) and reduced by the domain's functions.

reference.py computes the same from the facts in Python, row by row; the tests hold the two
to the same rows for every KPI, grouping and window of a scenario.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg

from salesops_common.events import WorkingHours
from salesops_metrics.adapters import aggregates, queries
from salesops_metrics.adapters.aggregates import Grouped, GroupingSet, PeriodBounds, Roster
from salesops_metrics.domain import plan_kpis, reducers
from salesops_metrics.domain.business_hours import business_seconds
from salesops_metrics.domain.dimensions import rep_dims
from salesops_metrics.domain.facts import Context, RepFact
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition, KpiValue, sorted_rows
from salesops_metrics.domain.periods import Period, Window
from salesops_metrics.domain.projection import micros
from salesops_metrics.domain.stats import ratio
from salesops_metrics.domain.territories import TerritoryModel

Wanted = tuple[KpiDefinition, str | None]
Rows = dict[tuple[str, str | None], list[GroupRow]]
# Per grouping: each group's finite observations (for histograms), by distribution name,
# ascending: doubles in an array (8 bytes each, where a list of floats takes 32), since a
# snapshot keeps them until the next one and they grow with the history in its window.
Distribution = list[tuple[dict[str, str | None], Sequence[float]]]
# The family that keeps each distribution.
DISTRIBUTIONS = {
    "sales_cycle": "deal_closed",
    "lead_response": "lead_created",
    "lead_response_business": "lead_created",
    "speed_to_lead": "lead_created",
}


@dataclass(frozen=True)
class KpiSettings:
    currency: str = "USD"
    fiscal_start_month: int = 1
    default_sla_minutes: float = 60.0


@dataclass
class Territories:
    """The newest territory model, read again only when a newer ruleset version arrives (a
    version's content never changes). One per service instance: instances may read
    different databases."""

    model: TerritoryModel = field(default_factory=TerritoryModel)

    async def newest(self, conn: asyncpg.Connection) -> TerritoryModel:
        version = await conn.fetchval("SELECT max(version) FROM rulesets")
        if version is None:
            return TerritoryModel()
        if version != self.model.version:
            self.model = await queries.territories(conn)
        return self.model


class Report:
    """One read: one snapshot of the data, the roster loaded once, each family of KPIs
    computed at most once with every grouping asked of it. With ``lanes`` (more connections
    on the same snapshot), families run side by side."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        window: Window,
        now: datetime,
        settings: KpiSettings,
        territories: Territories | None = None,
        lanes: Sequence[asyncpg.Connection] = (),
    ) -> None:
        self.conn, self.window, self.now, self.settings = conn, window, now, settings
        self._lanes = lanes
        self._territories = territories or Territories()
        self._context: Context | None = None
        self._roster: Roster | None = None
        self.distributions: dict[tuple[str, str | None], Distribution] = {}
        # seconds each family computed took, on its lane (waits for the loop and the
        # database included)
        self.took: dict[str, float] = {}
        self.ended: dict[str, float] = {}  # time.perf_counter() when each family's read ended

    async def context(self) -> Context:
        if self._context is None:
            s = self.settings
            self._context = Context(
                now=self.now,
                window=self.window,
                rates=await queries.rates(self.conn, s.currency),
                fiscal_start_month=s.fiscal_start_month,
                default_sla_minutes=s.default_sla_minutes,
                reps=await queries.reps(self.conn),
                territories=await self._territories.newest(self.conn),
            )
        return self._context

    async def roster(self) -> Roster:
        if self._roster is None:
            self._roster = roster_of(await self.context(), self.settings)
        return self._roster

    async def compute(self, wanted: Sequence[Wanted]) -> Rows:
        """The rows of each (KPI, grouping) in ``wanted``."""
        families: dict[str, dict[str, list[str | None]]] = {}
        for kpi, by in wanted:
            if not kpi.supports(by):
                raise ValueError(f"{kpi.name} cannot be grouped by {by}")
            groupings = families.setdefault(kpi.basis, {}).setdefault(kpi.name, [])
            if by not in groupings:
                groupings.append(by)
        await self.roster()  # once, before the families share it
        lanes: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        for conn in (self.conn, *self._lanes):
            lanes.put_nowait(conn)

        async def run(basis: str) -> Rows:
            conn = await lanes.get()
            started = time.perf_counter()
            try:
                return await FAMILIES[basis](self, conn, families[basis])
            finally:
                self.ended[basis] = time.perf_counter()
                self.took[basis] = self.ended[basis] - started
                lanes.put_nowait(conn)

        found: Rows = {}
        heaviest_first = sorted(families, key=lambda b: WEIGHTS.index(b))
        # every family ends before any error is raised: the lanes' connections go back to
        # their pool only once no statement runs on them
        done = await asyncio.gather(*(run(b) for b in heaviest_first), return_exceptions=True)
        for rows in done:
            if isinstance(rows, BaseException):
                raise rows
            found.update(rows)
        return {(kpi.name, by): found[(kpi.name, by)] for kpi, by in wanted}


def roster_of(ctx: Context, settings: KpiSettings) -> Roster:
    """Every rep's dimensions as the domain works them out, and the reps the ruleset names by
    id that metrics never heard of (their primary territory is all that is known of them)."""
    ids: list[UUID] = []
    dims: list[dict[str, str | None]] = []
    for rep_id in ctx.reps:
        ids.append(rep_id)
        dims.append(rep_dims(ctx, rep_id))
    for key in ctx.territories.primary_by_rep:
        named = _canonical_uuid(key)
        if named is not None and named not in ctx.reps:
            ids.append(named)
            dims.append(rep_dims(ctx, named))
    slas = ctx.territories.sla_minutes
    return Roster(
        reporting=settings.currency,
        rep_ids=ids,
        teams=[d["team"] for d in dims],
        managers=[d["manager"] for d in dims],
        territories=[d["territory"] for d in dims],
        sla_territories=list(slas),
        sla_minutes=list(slas.values()),
        default_sla_minutes=settings.default_sla_minutes,
    )


def _canonical_uuid(text: str) -> UUID | None:
    """A rep id as ``str(UUID)`` writes it: the only form the domain matches a rep by."""
    try:
        found = UUID(text)
    except ValueError:
        return None
    return found if str(found) == text else None


# --- the families --------------------------------------------------------------------------------

Family = Callable[[Report, asyncpg.Connection, dict[str, list[str | None]]], Awaitable[Rows]]
# (observations in the group, the value): a group with no observation of a KPI is no row of
# it, except the one group of no grouping, which always has one.
Measure = tuple[Callable[[Grouped], int], Callable[[Grouped], KpiValue]]


def _sets(kpis: dict[str, list[str | None]], keys: GroupingSet = ()) -> list[GroupingSet]:
    sets: list[GroupingSet] = []
    for groupings in kpis.values():
        for by in groupings:
            grouping_set = (*keys, *([by] if by else []))
            if grouping_set not in sets:
                sets.append(grouping_set)
    return sets


def _collect(
    kpis: dict[str, list[str | None]],
    found: Iterable[Grouped],
    measures: dict[str, Measure],
) -> Rows:
    out: Rows = {(name, by): [] for name, groupings in kpis.items() for by in groupings}
    for grouped in found:
        for name in kpis:
            rows = out.get((name, grouped.by))
            if rows is None:
                continue
            observed, value = measures[name]
            if grouped.columns and not observed(grouped):
                continue
            rows.append(GroupRow(grouped.group, value(grouped)))
    return {key: sorted_rows(rows) for key, rows in out.items()}


def _keep(
    report: Report, name: str, found: Iterable[Grouped], values: Callable[[Grouped], list[float]]
) -> None:
    """Each group's finite observations, from its arrays in ascending order (_ordered): the
    durations never ended (infinite) are last."""
    for grouped in found:
        ordered = values(grouped)
        finite = array(
            "d", ordered[bisect_right(ordered, -math.inf) : bisect_left(ordered, math.inf)]
        )
        report.distributions.setdefault((name, grouped.by), []).append((grouped.group, finite))


def _ordered(found: Iterable[Grouped], arrays: Sequence[str]) -> list[Grouped]:
    """Each group's ``arrays`` sorted once, for every percentile and histogram read from them
    (sorting a sorted list again is one pass)."""
    return [
        replace(g, values={**g.values, **{name: sorted(g[name]) for name in arrays}}) for g in found
    ]


DEAL_CLOSED: dict[str, Measure] = {
    "win_rate": (lambda g: g["n"], lambda g: reducers.share_of(g["won"], g["n"])),
    "win_rate_by_value": (
        lambda g: g["valued"],
        lambda g: reducers.amount_share_of(g["won_amount"], g["amount"], g["valued"]),
    ),
    "deals_won": (lambda g: g["won"], lambda g: reducers.count_of(g["won"])),
    "deals_lost": (lambda g: g["lost"], lambda g: reducers.count_of(g["lost"])),
    "sales_cycle_mean": (lambda g: len(g["cycles"]), lambda g: reducers.average(g["cycles"])),
    "sales_cycle_median": (
        lambda g: len(g["cycles"]),
        lambda g: reducers.quantile_of_sorted(0.5)(g["cycles"]),
    ),
    "sales_cycle_p90": (
        lambda g: len(g["cycles"]),
        lambda g: reducers.quantile_of_sorted(0.9)(g["cycles"]),
    ),
}


# The aggregates of each KPI's measure (aggregates.DEALS_CLOSED): a request for one KPI
# computes only those; ``n`` always.
DEAL_CLOSED_NEEDS: dict[str, tuple[str, ...]] = {
    "win_rate": ("won",),
    "win_rate_by_value": ("valued", "won_amount", "amount"),
    "deals_won": ("won",),
    "deals_lost": ("lost",),
    "sales_cycle_mean": ("cycles",),
    "sales_cycle_median": ("cycles",),
    "sales_cycle_p90": ("cycles",),
}
assert set(DEAL_CLOSED_NEEDS) == set(DEAL_CLOSED)


def _needs(kpis: Iterable[str], needs: dict[str, tuple[str, ...]]) -> set[str]:
    return {aggregate for name in kpis for aggregate in needs[name]}


async def _deal_closed(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    wanted = _needs(kpis, DEAL_CLOSED_NEEDS)
    found = await aggregates.deals_closed(
        conn, await report.roster(), report.window, _sets(kpis), wanted
    )
    if "cycles" in wanted:
        found = _ordered(found, ("cycles",))
        _keep(report, "sales_cycle", found, lambda g: g["cycles"])
    return _collect(kpis, found, DEAL_CLOSED)


async def _deal_created(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    found = await aggregates.deals_created(conn, await report.roster(), report.window, _sets(kpis))
    measures: dict[str, Measure] = {
        "deal_conversion": (lambda g: g["n"], lambda g: reducers.share_of(g["won"], g["n"]))
    }
    return _collect(kpis, found, measures)


async def _deal_open(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    keys = ("stage",)
    found = await aggregates.pipeline(conn, await report.roster(), report.window, _sets(kpis, keys))
    measures: dict[str, Measure] = {
        "pipeline_value": (
            lambda g: g["n"],
            lambda g: reducers.amount_total_of(g["amount"], g["n"]),
        )
    }
    return _collect(kpis, found, measures)


async def _stage_entered(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    """domain deal_kpis.stage_conversion: for each from_stage and group, the deals that
    entered it in the window (``entered``), and of those, how many entered each next stage."""
    found = await aggregates.stage_moves(
        conn, await report.roster(), report.window, _sets(kpis, ("from_stage", "to_stage"))
    )
    out: Rows = {("stage_conversion", by): [] for by in kpis["stage_conversion"]}
    for g in found:
        if g.key[1] is None:  # entered from_stage, and nothing after it yet
            continue
        moved, entered = g["n"], int(g["entered"])
        value = KpiValue(ratio(moved, entered), moved, entered, entered)
        out[("stage_conversion", g.by)].append(GroupRow(g.group, value))
    return {key: sorted_rows(rows) for key, rows in out.items()}


BUSINESS = ("lead_response_business_median", "lead_response_business_p90")
# The aggregates of each KPI's measure (aggregates.LEAD_JOURNEYS); ``n`` always.
LEAD_CREATED_NEEDS: dict[str, tuple[str, ...]] = {
    "lead_response_median": ("response",),
    "lead_response_p90": ("response",),
    "lead_response_business_median": ("business",),
    "lead_response_business_p90": ("business",),
    "lead_response_within_sla": ("within_sla",),
    "speed_to_lead_median": ("speed",),
    "speed_to_lead_p90": ("speed",),
    "lead_to_deal_conversion": ("converted",),
}


async def _lead_created(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    ctx = await report.context()
    business = None
    if any(name in kpis for name in BUSINESS):
        touches = await aggregates.lead_touches(conn, report.window)
        minutes = [
            business_minutes(ctx, created, touched, rep) for _, created, touched, rep in touches
        ]
        business = ([lead for lead, *_ in touches], minutes)
    wanted = _needs(kpis, LEAD_CREATED_NEEDS)
    found = await aggregates.lead_journeys(
        conn, await report.roster(), report.window, _sets(kpis), business=business, wanted=wanted
    )
    arrays = [a for a in ("response", "speed", "business") if a in wanted]
    found = _ordered(found, arrays)
    n: Callable[[Grouped], int] = lambda g: g["n"]  # noqa: E731 - every lead is observed
    measures: dict[str, Measure] = {
        "lead_response_median": (n, lambda g: reducers.quantile_of_sorted(0.5)(g["response"])),
        "lead_response_p90": (n, lambda g: reducers.quantile_of_sorted(0.9)(g["response"])),
        "lead_response_business_median": (
            n,
            lambda g: reducers.quantile_of_sorted(0.5)(g["business"]),
        ),
        "lead_response_business_p90": (
            n,
            lambda g: reducers.quantile_of_sorted(0.9)(g["business"]),
        ),
        "lead_response_within_sla": (n, lambda g: reducers.share_of(g["within_sla"], g["n"])),
        "speed_to_lead_median": (n, lambda g: reducers.quantile_of_sorted(0.5)(g["speed"])),
        "speed_to_lead_p90": (n, lambda g: reducers.quantile_of_sorted(0.9)(g["speed"])),
        "lead_to_deal_conversion": (n, lambda g: reducers.share_of(g["converted"], g["n"])),
    }
    assert set(measures) == set(LEAD_CREATED_NEEDS)
    rows = _collect(kpis, found, measures)
    if "response" in wanted:
        _keep(report, "lead_response", found, lambda g: g["response"])
    if "speed" in wanted:
        _keep(report, "speed_to_lead", found, lambda g: g["speed"])
    if "business" in wanted:
        _keep(report, "lead_response_business", found, lambda g: g["business"])
    return rows


Schedule = tuple[tuple[str, str, tuple[int, ...]] | None, str | None]  # (hours, zone)


def _minutes_between(created_us: int, touched_us: int, schedule: Schedule) -> float:
    hours, zone = schedule
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    working = WorkingHours(start=hours[0], end=hours[1], days=list(hours[2])) if hours else None
    seconds = business_seconds(
        epoch + timedelta(microseconds=created_us),
        epoch + timedelta(microseconds=touched_us),
        hours=working,
        time_zone=zone,
    )
    return seconds / 60


class BusinessMinutes:
    """Business minutes between two times on a schedule, each worked out once per process (a
    pure function; tens of microseconds each, for every touched lead of a window, at every
    snapshot) and kept up to ``limit`` values, then all dropped at once (a least-recently-used
    bound would drop, when a window holds more, what the next snapshot reads first).

    What it holds grows with the leads touched, so it is kept lean: per schedule, a dict of
    floats keyed by one int made of both times (108 bytes a value, 27 MiB at 2**18 values,
    where ``functools.lru_cache`` took 197 bytes, 49 MiB: bench/metrics_held.py)."""

    def __init__(self, limit: int = 1 << 18, compute: Callable[..., float] | None = None) -> None:
        self.limit = limit
        self._compute = compute or _minutes_between
        self._by_schedule: dict[Schedule, dict[int, float]] = {}
        self.size = 0

    def __call__(self, created_us: int, touched_us: int, schedule: Schedule) -> float:
        if created_us < 0 or not 0 <= touched_us < _SPAN:  # before 1970: not kept
            return self._compute(created_us, touched_us, schedule)
        key = (created_us << 64) | touched_us  # one int for both: unique in these bounds
        kept = self._by_schedule.get(schedule)
        if kept is None:
            kept = self._by_schedule[schedule] = {}
        found = kept.get(key)
        if found is None:
            if self.size >= self.limit:
                self.clear()
                kept = self._by_schedule[schedule] = {}
            found = kept[key] = self._compute(created_us, touched_us, schedule)
            self.size += 1
        return found

    def clear(self) -> None:
        self._by_schedule.clear()
        self.size = 0


_SPAN = 1 << 64
_BUSINESS = BusinessMinutes()


def business_minutes(ctx: Context, created_us: int, touched_us: int, rep_id: UUID) -> float:
    """domain lead_kpis.business_response_minutes for one lead: the responding rep's hours and
    zone as the rep is now (a pure function of those, so worked out once per process)."""
    rep: RepFact | None = ctx.reps.get(rep_id)
    hours = rep.working_hours if rep else None
    key = (hours.start, hours.end, tuple(hours.days)) if hours else None
    return _BUSINESS(created_us, touched_us, (key, rep.time_zone if rep else None))


async def _assigned(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    roster = await report.roster()
    found: list[Grouped] = []
    measures: dict[str, Measure] = {}
    if "leads_assigned" in kpis:
        wanted = {"leads_assigned": kpis["leads_assigned"]}
        found = await aggregates.first_assignments(conn, roster, report.window, _sets(wanted))
        measures["leads_assigned"] = (lambda g: g["n"], lambda g: reducers.count_of(g["n"]))
    rows = _collect({k: v for k, v in kpis.items() if k == "leads_assigned"}, found, measures)
    if "sla_breach_rate" in kpis:
        wanted = {"sla_breach_rate": kpis["sla_breach_rate"]}
        made = await aggregates.assignments_made(conn, roster, report.window, _sets(wanted))
        share: Measure = (lambda g: g["n"], lambda g: reducers.share_of(g["breached"], g["n"]))
        rows.update(_collect(wanted, made, {"sla_breach_rate": share}))
    return rows


async def _activity(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    ctx = await report.context()
    licensed = plan_kpis.licensed_tools(ctx, await queries.tools_used(conn, report.window))
    return {
        ("technology_adoption", by): plan_kpis.adoption_by(licensed, by)
        for by in kpis["technology_adoption"]
    }


def _bounds(ctx: Context, periods: Iterable[Period]) -> list[PeriodBounds]:
    unique = {p.name: p for p in periods}
    return [
        PeriodBounds(
            p.name,
            micros(p.start),
            micros(p.end),
            p.start.date(),
            p.end.date(),
            p.contains(ctx.now),
        )
        for p in unique.values()
    ]


async def _forecast(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    """Every grouping's scope kind at once: the latest forecasts of each, then the amounts won
    in all of their periods by every kind's scopes, in one statement."""
    ctx = await report.context()
    forecasts = await queries.forecasts(conn)
    groupings = list(dict.fromkeys(by for groupings in kpis.values() for by in groupings))
    kinds = list(dict.fromkeys(plan_kpis.SCOPE_OF_GROUP[by] for by in groupings))
    latest = {kind: plan_kpis.latest_forecasts(ctx, forecasts, kind) for kind in kinds}
    periods = (p for found in latest.values() for p, _ in found.values())
    won = await aggregates.won_in_periods(conn, await report.roster(), _bounds(ctx, periods), kinds)
    out: Rows = {}
    for by in groupings:
        kind = plan_kpis.SCOPE_OF_GROUP[by]

        def actual(period: Period, scope_id: str | None) -> Decimal:
            return won.get((kind, period.name, scope_id), Decimal(0))  # noqa: B023 - at once

        outcomes = plan_kpis.outcomes_of(ctx, kind, latest[kind], actual)
        for name, summarize in SUMMARIES.items():
            if by in kpis.get(name, ()):
                out[(name, by)] = summarize(outcomes)
    return out


SUMMARIES = {
    "forecast_accuracy": plan_kpis.forecast_accuracy,
    "forecast_wape": plan_kpis.forecast_wape,
    "forecast_bias": plan_kpis.forecast_bias,
}


async def _quota(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    """Every grouping's scope kind at once: the open pipeline of all their quotas' periods by
    every kind's scopes, in one statement."""
    ctx = await report.context()
    quotas = await queries.quotas(conn)
    kinds = list(dict.fromkeys(plan_kpis.SCOPE_OF_GROUP[by] for by in kpis["pipeline_coverage"]))
    periods = (p for kind in kinds for p in plan_kpis.quota_periods(ctx, quotas, kind))
    found = await aggregates.open_in_periods(
        conn, await report.roster(), _bounds(ctx, periods), kinds
    )
    out: Rows = {}
    for by in kpis["pipeline_coverage"]:
        kind = plan_kpis.SCOPE_OF_GROUP[by]

        def pipeline(period: Period, scope_id: str | None) -> tuple[Decimal, int]:
            return found.get((kind, period.name, scope_id), (Decimal(0), 0))  # noqa: B023

        out[("pipeline_coverage", by)] = plan_kpis.coverage_rows(ctx, quotas, kind, pipeline)
    return out


async def _lead_events(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    created, duplicates = await queries.lead_events(conn, report.window)
    seen = created + duplicates
    value = KpiValue(ratio(duplicates, seen), duplicates, seen, seen)
    return {("duplicate_rate", None): [GroupRow({}, value)]}


async def _dead_letters(
    report: Report, conn: asyncpg.Connection, kpis: dict[str, list[str | None]]
) -> Rows:
    count = await queries.dead_letters(conn, report.window)
    return {("dead_letters", None): [GroupRow({}, KpiValue(count, count, None, count))]}


FAMILIES: dict[str, Family] = {
    "deal_closed": _deal_closed,
    "deal_created": _deal_created,
    "deal_open": _deal_open,
    "stage_entered": _stage_entered,
    "lead_created": _lead_created,
    "assigned": _assigned,
    "activity": _activity,
    "forecast": _forecast,
    "quota": _quota,
    "lead_events": _lead_events,
    "dead_letters": _dead_letters,
}
assert {k.basis for k in KPIS.values()} == set(FAMILIES), set(FAMILIES)
# Started in this order, so that the longest overlap the most.
WEIGHTS = (
    "stage_entered",
    "lead_created",
    "deal_closed",
    "quota",
    "deal_open",
    "deal_created",
    "forecast",
    "activity",
    "assigned",
    "lead_events",
    "dead_letters",
)
assert set(WEIGHTS) == set(FAMILIES)
