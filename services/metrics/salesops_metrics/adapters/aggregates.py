"""Metrics' SQL that aggregates: each family of KPIs worked out and grouped in PostgreSQL, every
grouping asked for in one statement (``GROUPING SETS``), so that a request or a scrape costs a
few statements and no Python per row.

What the statements return is exact: counts; sums of amounts in ``numeric``; durations worked
out from integer microseconds as Python works them out (the exact integer, divided as a
double, clamped, divided again: the same IEEE operations, the same double), returned as
per-group arrays, so that percentiles and means are reduced by the domain's own functions
(domain/reducers.py). Business time, which needs each rep's time zone and working hours, comes
back as (created, touched, rep) per lead for the domain to work out.

The dimensions follow domain/dimensions.py: reps' team, manager and primary territory arrive
as a small table the domain worked out (``rep_dims``); an industry's trimmed, lower-cased name
comes from ``industry_keys``, filled with Python's own ``str.strip().lower()`` as events are
projected, so that a segment groups exactly as the domain names it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from salesops_metrics.domain.periods import Window
from salesops_metrics.domain.projection import micros

DIMENSION_COLUMNS = ("rep", "team", "manager", "territory", "source", "segment")
KEY_COLUMNS = ("stage", "from_stage", "to_stage")
_COLUMNS = frozenset((*DIMENSION_COLUMNS, *KEY_COLUMNS))
GroupingSet = tuple[str, ...]
# Scopes of forecasts and quotas: the dimension each kind reads (company: none).
SCOPE_COLUMNS = {"company": None, "team": "team", "rep": "rep", "territory": "territory"}


@dataclass(frozen=True)
class Roster:
    """What the statements read besides the projections: every rep's dimensions as the domain
    works them out (reps the ruleset names by id but metrics never heard of included), each
    territory's first-touch SLA, and the reporting currency."""

    reporting: str
    rep_ids: Sequence[UUID] = ()
    teams: Sequence[str | None] = ()
    managers: Sequence[str | None] = ()
    territories: Sequence[str | None] = ()
    sla_territories: Sequence[str] = ()
    sla_minutes: Sequence[float] = ()
    default_sla_minutes: float = 60.0


@dataclass(frozen=True)
class Grouped:
    """One group of one grouping set: the set's columns and their values (``group``), the
    dimension it groups by (None: none), and the aggregates."""

    columns: GroupingSet
    key: tuple[Any, ...]
    by: str | None
    group: dict[str, str | None]
    values: asyncpg.Record | Mapping[str, Any]  # or what the service layer made of one

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


@dataclass(frozen=True)
class PeriodBounds:
    name: str
    start_us: int
    end_us: int
    start_day: date
    end_day: date  # exclusive
    holds_now: bool


class _Args:
    """A statement's arguments, numbered as the SQL that uses them is written."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


# --- fragments ----------------------------------------------------------------------------------


def _segment(industry: str, employees: str, keys: str) -> str:
    """domain.dimensions.segment of an account's or a lead's industry and employees:
    ``<industry>/<employee band>``; null with neither. ``keys``: ``industry_keys`` joined on
    the industry."""
    # industry_keys holds every industry projected; the fallback covers a database projected
    # before it existed and not rebuilt since (ASCII names come out the same either way).
    industry = f"coalesce({keys}.key, lower(btrim({industry})))"
    band = (
        f"CASE WHEN {employees} IS NULL OR {employees} < 1 THEN 'unknown' "
        f"WHEN {employees} < 50 THEN '1-49' WHEN {employees} < 250 THEN '50-249' "
        f"WHEN {employees} < 1000 THEN '250-999' WHEN {employees} < 5000 THEN '1000-4999' "
        "ELSE '5000+' END"
    )
    return (
        f"(CASE WHEN {industry} IS NULL AND {employees} IS NULL THEN NULL "
        f"ELSE coalesce({industry}, 'unknown') || '/' || ({band}) END)"
    )


def _rep_dims(args: _Args, roster: Roster) -> str:
    return f"""
        rep_dims AS (
            SELECT * FROM unnest({args(list(roster.rep_ids), "uuid[]")},
                                 {args(list(roster.teams), "text[]")},
                                 {args(list(roster.managers), "text[]")},
                                 {args(list(roster.territories), "text[]")})
                AS r (rep_id, team, manager, territory)
        )
    """


def _currency(deal: str, reporting: str) -> str:
    return f"upper(coalesce({deal}.currency, {reporting}))"


def _converted(deal: str, rates: str, reporting: str) -> str:
    """Rates.convert: the amount in the reporting currency; null without a rate."""
    return (
        f"(CASE WHEN {deal}.amount IS NULL THEN NULL "
        f"WHEN {_currency(deal, reporting)} = {reporting} THEN {deal}.amount "
        f"ELSE {deal}.amount * {rates}.rate END)"
    )


def _duration(start_us: str, end_us: str, unit_seconds: int) -> str:
    """timedelta.total_seconds() of exact microseconds, clamped at 0, per minute or day."""
    return f"(greatest(({end_us} - {start_us})::float8 / 1000000, 0) / {unit_seconds})"


def _micros(timestamp: str) -> str:
    return f"(extract(epoch FROM {timestamp}) * 1000000)::bigint"


def _in(args: _Args, column: str, window: Window, *, micro: bool) -> str:
    """Half-open ``[start, end)``; a missing bound is unbounded."""
    if micro:
        start = args(micros(window.start) if window.start else None, "bigint")
        end = args(micros(window.end) if window.end else None, "bigint")
    else:
        start, end = args(window.start, "timestamptz"), args(window.end, "timestamptz")
    return f"({start} IS NULL OR {column} >= {start}) AND ({end} IS NULL OR {column} < {end})"


def _needed(sets: Sequence[GroupingSet]) -> frozenset[str]:
    """The columns the grouping sets group by: the dimensions a statement must work out (the
    others' lookups and joins are left out, which changes no row: each is a left join on a
    key, at most one row)."""
    return frozenset(c for s in sets for c in s)


def _picked(aggregates: dict[str, str], wanted: Collection[str] | None) -> str:
    """The select list of the aggregates ``wanted`` (None: all), ``n`` always."""
    names = [n for n in aggregates if wanted is None or n == "n" or n in wanted]
    return ", ".join(f"{aggregates[n]} AS {n}" for n in names)


def _grouping(sets: Sequence[GroupingSet]) -> tuple[str, str, list[str]]:
    """The select list's grouping columns and the GROUP BY clause of ``sets``."""
    columns: list[str] = []
    for grouping_set in sets:
        for column in grouping_set:
            if column not in _COLUMNS:
                raise ValueError(f"unknown grouping column {column!r}")
            if column not in columns:
                columns.append(column)
    if not columns:
        return "0 AS grouping_id", "", columns
    listed = ", ".join(columns)
    clause = ", ".join("(" + ", ".join(s) + ")" for s in sets)
    return (
        f"GROUPING({listed}) AS grouping_id, {listed}",
        f"GROUP BY GROUPING SETS ({clause})",
        columns,
    )


async def _grouped(
    conn: asyncpg.Connection,
    args: _Args,
    ctes: str,
    aggregates: str,
    sets: Sequence[GroupingSet],
    *,
    where: str = "true",
) -> list[Grouped]:
    select, group_by, columns = _grouping(sets)
    rows = await conn.fetch(
        f"WITH {ctes} SELECT {select}, {aggregates} FROM obs WHERE {where} {group_by}",
        *args.values,
    )
    width = len(columns)
    by_mask = {
        sum(1 << (width - 1 - i) for i, c in enumerate(columns) if c not in s): s for s in sets
    }
    by_of = {s: next((c for c in s if c in DIMENSION_COLUMNS), None) for s in sets}
    out = []
    for row in rows:
        grouping_set = by_mask[row["grouping_id"]]
        key = tuple(row[c] for c in grouping_set)
        group = dict(zip(grouping_set, key, strict=True))
        out.append(Grouped(grouping_set, key, by_of[grouping_set], group, row))
    return out


# --- deals --------------------------------------------------------------------------------------


# Each statement has two steps: ``base``, the rows of the window with what is looked up for
# each by key (so its cost follows the window, not the tables), then ``obs``, those rows
# hash-joined once with the small tables (rep dimensions, SLAs, industry keys, rates). Left to
# itself the planner may nest the small tables inside the lookups, once per row.


def _deal_obs(
    args: _Args,
    roster: Roster,
    where: str,
    measures: str,
    *,
    source: str = "deals d",
    columns: str = "",
    need: Collection[str] = DIMENSION_COLUMNS,
    amount: bool = True,
) -> str:
    """``obs``: the deals (``d``, not deleted) ``where`` selects, with their dimensions
    (domain.dimensions ``deal_dims``) and ``measures``, over ``b`` (the deal's columns and
    ``columns`` from what else ``source`` names) and ``m.amount`` (in the reporting currency;
    null when it cannot be reported). Only the dimensions in ``need`` are worked out (the
    others are null), and ``m.amount`` only with ``amount``."""
    extra = f", {columns}" if columns else ""
    accounts = bool({"territory", "segment"} & set(need))
    reps = bool({"team", "manager", "territory"} & set(need))
    looked_up = []
    lookups = ""
    if accounts:
        looked_up.append(
            "a.territory_id AS account_territory, a.industry AS account_industry, "
            "a.employees AS account_employees"
        )
        lookups += _by_key("a", "accounts", "account_id", "d.account_id", "AND NOT a.deleted")
    if "source" in need:
        looked_up.append("src.lead_source")
        lookups += "\n" + _by_key("src", "leads", "lead_id", "d.lead_id")
    looked = "".join(f", {c}" for c in looked_up)
    territory = "coalesce(b.account_territory, o.territory)" if "territory" in need else "NULL"
    segment = (
        _segment("b.account_industry", "b.account_employees", "ka") if "segment" in need else "NULL"
    )
    joins = ""
    if reps:
        joins += "LEFT JOIN rep_dims o ON o.rep_id = b.owner_id\n"
    if "segment" in need:
        joins += "LEFT JOIN industry_keys ka ON ka.raw = b.account_industry\n"
    if amount:  # a parameter named nowhere in the text would have no type
        reporting = args(roster.reporting.upper(), "text")
        joins += f"""LEFT JOIN exchange_rates x ON x.currency = {_currency("b", reporting)}
            CROSS JOIN LATERAL (SELECT {_converted("b", "x", reporting)} AS amount) m"""
    return f"""
        {_rep_dims(args, roster)},
        base AS MATERIALIZED (
            SELECT d.owner_id, d.outcome, d.created_us, d.close_us, d.amount, d.currency,
                   d.stage, d.expected_close {looked} {extra}
            FROM {source}
            {lookups}
            WHERE NOT d.deleted AND {where}
        ),
        obs AS (
            SELECT b.owner_id::text AS rep,
                   {"o.team" if reps else "NULL::text"} AS team,
                   {"o.manager" if reps else "NULL::text"} AS manager,
                   {territory}::text AS territory,
                   {"b.lead_source" if "source" in need else "NULL"}::text AS source,
                   {segment}::text AS segment,
                   {measures}
            FROM base b
            {joins}
        )
    """


DEALS_CLOSED = {
    "n": "count(*)",
    "won": "count(*) FILTER (WHERE outcome = 'won')",
    "lost": "count(*) FILTER (WHERE outcome = 'lost')",
    "valued": "count(amount)",
    "won_amount": "coalesce(sum(amount) FILTER (WHERE outcome = 'won'), 0)",
    "amount": "coalesce(sum(amount), 0)",
    "cycles": "coalesce(array_agg(cycle) FILTER (WHERE cycle IS NOT NULL), '{}')",
}
AMOUNTS = frozenset(("valued", "won_amount", "amount"))


async def deals_closed(
    conn: asyncpg.Connection,
    roster: Roster,
    window: Window,
    sets: Sequence[GroupingSet],
    wanted: Collection[str] | None = None,
) -> list[Grouped]:
    """Deals closed (won or lost) in the window: counts, amounts, and won deals' cycles in
    days; of DEALS_CLOSED, those ``wanted`` (None: all)."""
    args = _Args()
    cycle = _duration("b.created_us", "b.close_us", 86_400)
    amount = wanted is None or bool(AMOUNTS & set(wanted))
    ctes = _deal_obs(
        args,
        roster,
        f"d.close_us IS NOT NULL AND {_in(args, 'd.close_us', window, micro=True)}",
        f"""b.outcome, {"m.amount" if amount else "NULL::numeric AS amount"},
            CASE WHEN b.outcome = 'won' AND b.created_us IS NOT NULL THEN {cycle} END AS cycle""",
        need=_needed(sets),
        amount=amount,
    )
    return await _grouped(conn, args, ctes, _picked(DEALS_CLOSED, wanted), sets)


async def deals_created(
    conn: asyncpg.Connection, roster: Roster, window: Window, sets: Sequence[GroupingSet]
) -> list[Grouped]:
    args = _Args()
    ctes = _deal_obs(
        args,
        roster,
        f"d.created_us IS NOT NULL AND {_in(args, 'd.created_us', window, micro=True)}",
        "b.outcome",
        need=_needed(sets),
        amount=False,
    )
    return await _grouped(
        conn, args, ctes, "count(*) AS n, count(*) FILTER (WHERE outcome = 'won') AS won", sets
    )


async def pipeline(
    conn: asyncpg.Connection, roster: Roster, window: Window, sets: Sequence[GroupingSet]
) -> list[Grouped]:
    """Open deals created in the window whose amount can be reported, by current stage."""
    args = _Args()
    ctes = _deal_obs(
        args,
        roster,
        "d.outcome IS NULL AND d.created_us IS NOT NULL "
        f"AND {_in(args, 'd.created_us', window, micro=True)}",
        "b.stage, m.amount",
        need=_needed(sets),
    )
    return await _grouped(
        conn, args, ctes, "count(*) AS n, sum(amount) AS amount", sets, where="amount IS NOT NULL"
    )


async def stage_moves(
    conn: asyncpg.Connection, roster: Roster, window: Window, sets: Sequence[GroupingSet]
) -> list[Grouped]:
    """Each stage a deal entered in the window, with the stage it entered next (its path,
    domain deal_kpis.stage_path, kept in ``deal_stages``), counted by (from_stage, to_stage)
    and group."""
    args = _Args()
    ctes = _deal_obs(
        args,
        roster,
        f"s.kept AND {_in(args, 's.entered_at', window, micro=False)}",
        "b.from_stage, b.to_stage",
        source="deal_stages s CROSS JOIN LATERAL "
        "(SELECT * FROM deals d WHERE d.deal_id = s.deal_id LIMIT 1) d",
        columns="s.stage AS from_stage, s.next_stage AS to_stage",
        need=_needed(sets),
        amount=False,
    )
    _, _, columns = _grouping(sets)
    partition = ", ".join(
        ["GROUPING(" + ", ".join(columns) + ")", "from_stage"]
        + [c for c in columns if c in DIMENSION_COLUMNS]
    )
    # how many entered from_stage in the group: the group's rows of every to_stage
    entered = f"sum(count(*)) OVER (PARTITION BY {partition}) AS entered"
    return await _grouped(conn, args, ctes, f"count(*) AS n, {entered}", sets)


# --- leads --------------------------------------------------------------------------------------


def _lead_obs(
    args: _Args,
    roster: Roster,
    *,
    source: str,
    where: str,
    columns: str,
    rep_id: str,
    territory: str,
    measures: str,
    joins: str = "",
    lead: str = "",
    need: Collection[str] = DIMENSION_COLUMNS,
) -> str:
    """``obs``: lead rows (``l``, from ``source``, or looked up by ``lead`` when ``source``
    does not name it; either may leave it null), with the dimensions of domain.dimensions
    ``lead_dims`` (the rep ``rep_id`` names and the territory, over ``b``; the lead's source
    and segment: its account's when the account is known, else its own) and ``measures``
    over ``b`` (``columns`` and the lead's) and what ``joins`` adds. Only the dimensions in
    ``need`` are worked out (the others are null)."""
    segment = "segment" in need
    reps = bool({"team", "manager"} & set(need))
    looked = []
    if "source" in need or segment:
        looked.append("l.lead_source, l.industry, l.employees")
    else:
        lead = ""  # nothing read from the lead
    if segment:
        looked.append(
            "a.account_id, a.industry AS account_industry, a.employees AS account_employees"
        )
        lead += "\n" + _by_key("a", "accounts", "account_id", "l.account_id", "AND NOT a.deleted")
    segment_of = (
        f"""CASE WHEN b.account_id IS NOT NULL
                 THEN {_segment("b.account_industry", "b.account_employees", "ka")}
                 ELSE {_segment("b.industry", "b.employees", "kl")} END"""
        if segment
        else "NULL"
    )
    dims = ""
    if reps:
        dims += f"LEFT JOIN rep_dims o ON o.rep_id = ({rep_id})\n"
    if segment:
        dims += """LEFT JOIN industry_keys ka ON ka.raw = b.account_industry
            LEFT JOIN industry_keys kl ON kl.raw = b.industry\n"""
    return f"""
        {_rep_dims(args, roster)},
        base AS MATERIALIZED (
            SELECT {"".join(f"{c}, " for c in looked)}{columns}
            FROM {source}
            {lead}
            WHERE {where}
        ),
        obs AS (
            SELECT ({rep_id})::text AS rep,
                   {"o.team" if reps else "NULL::text"} AS team,
                   {"o.manager" if reps else "NULL::text"} AS manager,
                   {territory if "territory" in need else "NULL"}::text AS territory,
                   {"nullif(b.lead_source, '')" if "source" in need else "NULL"}::text AS source,
                   {segment_of}::text AS segment,
                   {measures}
            FROM base b
            {dims}
            {joins}
        )
    """


def _by_key(alias: str, table: str, key: str, value: str, more: str = "") -> str:
    """The row of ``table`` whose primary key is ``value``, looked up by its index (the LIMIT
    keeps the planner from hashing the whole table instead): what a statement costs grows with
    the rows of its window, not with the tables."""
    return (
        f"LEFT JOIN LATERAL (SELECT * FROM {table} {alias} "
        f"WHERE {alias}.{key} = {value} {more} LIMIT 1) {alias} ON true"
    )


async def lead_touches(
    conn: asyncpg.Connection, window: Window
) -> list[tuple[UUID, int, int, UUID]]:
    """(lead, created, touched, rep) of the leads of ``lead_journeys`` that were touched."""
    args = _Args()
    rows = await conn.fetch(
        f"""
        SELECT l.lead_id, l.created_us, j.touched_us, j.touched_by
        FROM leads l
        CROSS JOIN LATERAL (SELECT * FROM lead_journeys j
                            WHERE j.lead_id = l.lead_id AND j.touched_us IS NOT NULL LIMIT 1) j
        WHERE NOT l.deleted AND NOT l.merged AND l.created_us IS NOT NULL
          AND {_in(args, "l.created_us", window, micro=True)}
        """,
        *args.values,
    )
    return [(r["lead_id"], r["created_us"], r["touched_us"], r["touched_by"]) for r in rows]


LEAD_JOURNEYS = {
    "n": "count(*)",
    "responded": "count(touched_us)",
    "reached": "count(*) FILTER (WHERE reached)",
    "within_sla": "count(*) FILTER (WHERE within_sla)",
    "converted": "count(*) FILTER (WHERE converted)",
    "response": "coalesce(array_agg(response), '{}')",
    "speed": "coalesce(array_agg(speed), '{}')",
    "business": "coalesce(array_agg(business), '{}')",  # with business minutes only
}
# whether a deal names the lead (lead_to_deal_conversion)
NAMED = """LEFT JOIN LATERAL (SELECT true AS named FROM deals d
                             WHERE d.lead_id = l.lead_id AND NOT d.deleted LIMIT 1) c ON true"""


async def lead_journeys(
    conn: asyncpg.Connection,
    roster: Roster,
    window: Window,
    sets: Sequence[GroupingSet],
    *,
    business: tuple[Sequence[UUID], Sequence[float]] | None = None,
    wanted: Collection[str] | None = None,
) -> list[Grouped]:
    """Leads (not merged, not deleted) created in the window, with their journeys (newest
    assignment, first assignment to a rep, first outbound touch by a rep the lead was assigned
    to: domain lead_kpis.journeys, kept in ``lead_journeys``): response and speed in minutes
    (infinite when they never happened), within the SLA, converted; with ``business`` (the
    touched leads and their business minutes: lead_touches), business response time too. Of
    LEAD_JOURNEYS, those ``wanted`` (None: all)."""
    args = _Args()
    converted = wanted is None or "converted" in wanted
    slas = f"""
        slas AS (
            SELECT * FROM unnest({args(list(roster.sla_territories), "text[]")},
                                 {args(list(roster.sla_minutes), "float8[]")})
                AS s (territory, minutes)
        )
    """
    response = f"""CASE WHEN b.touched_us IS NULL THEN 'Infinity'::float8
                       ELSE {_duration("b.created_us", "b.touched_us", 60)} END"""
    default_sla = args(roster.default_sla_minutes, "float8")
    touched, minutes = business or ((), ())
    slas += f""",
        business AS (
            SELECT * FROM unnest({args(list(touched), "uuid[]")}, {args(list(minutes), "float8[]")})
                AS z (lead_id, minutes)
        )
    """
    ctes = (
        slas
        + ","
        + _lead_obs(
            args,
            roster,
            source=f"""leads l {_by_key("j", "lead_journeys", "lead_id", "l.lead_id")}
                   {NAMED if converted else ""}""",
            where="NOT l.deleted AND NOT l.merged AND l.created_us IS NOT NULL "
            f"AND {_in(args, 'l.created_us', window, micro=True)}",
            columns=f"""l.lead_id, l.created_us, l.owner_id, j.lead_id IS NOT NULL AS assigned,
                   j.latest_rep_id, j.latest_territory, j.first_to_rep_us, j.touched_us,
                   j.touched_by,
                   {"l.converted OR c.named IS NOT NULL" if converted else "NULL"} AS converted""",
            rep_id="CASE WHEN b.assigned THEN b.latest_rep_id ELSE b.owner_id END",
            territory="b.latest_territory",
            need=_needed(sets),
            measures=f"""b.touched_us, m.response, b.converted,
                     CASE WHEN b.touched_us IS NULL THEN 'Infinity'::float8
                          ELSE z.minutes END AS business,
                     b.first_to_rep_us IS NOT NULL AS reached,
                     CASE WHEN b.first_to_rep_us IS NULL THEN 'Infinity'::float8
                          ELSE {_duration("b.created_us", "b.first_to_rep_us", 60)} END AS speed,
                     m.response <= coalesce(s.minutes, {default_sla}) AS within_sla""",
            joins=f"""LEFT JOIN slas s ON s.territory = coalesce(b.latest_territory, '')
                  LEFT JOIN business z ON z.lead_id = b.lead_id
                  CROSS JOIN LATERAL (SELECT {response} AS response) m""",
        )
    )
    aggregates = dict(LEAD_JOURNEYS)
    if not business:
        del aggregates["business"]
    return await _grouped(conn, args, ctes, _picked(aggregates, wanted), sets)


async def first_assignments(
    conn: asyncpg.Connection, roster: Roster, window: Window, sets: Sequence[GroupingSet]
) -> list[Grouped]:
    """Leads whose first assignment to a rep falls in the window, with their newest
    assignment's dimensions (domain lead_kpis ``leads_assigned``). The window is compared in
    microseconds: a journey keeps its times exactly so."""
    args = _Args()
    lead = _by_key("l", "leads", "lead_id", "j.lead_id", "AND NOT l.deleted AND NOT l.merged")
    ctes = _lead_obs(
        args,
        roster,
        source="lead_journeys j",
        lead=lead,
        need=_needed(sets),
        where="j.first_to_rep_us IS NOT NULL "
        f"AND {_in(args, 'j.first_to_rep_us', window, micro=True)}",
        columns="j.latest_rep_id, j.latest_territory",
        rep_id="b.latest_rep_id",
        territory="b.latest_territory",
        measures="true AS counted",
    )
    return await _grouped(conn, args, ctes, "count(*) AS n", sets)


async def assignments_made(
    conn: asyncpg.Connection, roster: Roster, window: Window, sets: Sequence[GroupingSet]
) -> list[Grouped]:
    """Assignments to a rep made in the window, and whether a breach names the same lead and
    rep (domain lead_kpis ``sla_breach_rate``)."""
    args = _Args()
    lead = _by_key("l", "leads", "lead_id", "x.lead_id", "AND NOT l.deleted AND NOT l.merged")
    ctes = _lead_obs(
        args,
        roster,
        source="lead_assignments x",
        lead=lead,
        need=_needed(sets),
        where=f"x.rep_id IS NOT NULL AND {_in(args, 'x.assigned_at', window, micro=False)}",
        columns="""x.rep_id, x.territory_id,
                   EXISTS (SELECT 1 FROM sla_breaches z
                           WHERE z.lead_id = x.lead_id AND z.rep_id = x.rep_id) AS breached""",
        rep_id="b.rep_id",
        territory="b.territory_id",
        measures="b.breached",
    )
    return await _grouped(
        conn, args, ctes, "count(*) AS n, count(*) FILTER (WHERE breached) AS breached", sets
    )


# --- forecasts and quotas ---------------------------------------------------------------------


def _periods(args: _Args, periods: Sequence[PeriodBounds]) -> str:
    return f"""
        periods AS (
            SELECT * FROM unnest({args([p.name for p in periods], "text[]")},
                                 {args([p.start_us for p in periods], "bigint[]")},
                                 {args([p.end_us for p in periods], "bigint[]")},
                                 {args([p.start_day.isoformat() for p in periods], "text[]")},
                                 {args([p.end_day.isoformat() for p in periods], "text[]")},
                                 {args([p.holds_now for p in periods], "bool[]")})
                AS p (name, start_us, end_us, start_day, end_day, holds_now)
        )
    """


Named = Callable[[asyncpg.Record], tuple[str, str | None]]


def _scopes(kinds: Sequence[str]) -> tuple[str, str, Named]:
    """The select list and GROUP BY clause that sum ``obs`` per period and scope of each of
    ``kinds`` in one pass, and what names a result row's (kind, scope id)."""
    columns = [c for c in (SCOPE_COLUMNS[k] for k in kinds) if c]
    sets = ", ".join(
        "(p.name" + (f", obs.{SCOPE_COLUMNS[k]}" if SCOPE_COLUMNS[k] else "") + ")" for k in kinds
    )
    if not columns:
        return "0 AS grouping_id", f"GROUP BY GROUPING SETS ({sets})", lambda row: ("company", None)
    everything = (1 << len(columns)) - 1
    kind_of = {everything: "company"}
    for kind in kinds:
        column = SCOPE_COLUMNS[kind]
        if column:
            kind_of[everything & ~(1 << (len(columns) - 1 - columns.index(column)))] = kind

    def named(row: asyncpg.Record) -> tuple[str, str | None]:
        kind = kind_of[row["grouping_id"]]
        column = SCOPE_COLUMNS[kind]
        return kind, (row[column] if column else None)

    listed = ", ".join(f"obs.{c}" for c in columns)
    return f"GROUPING({listed}) AS grouping_id, {listed}", f"GROUP BY GROUPING SETS ({sets})", named


# (scope kind, period name, scope id)
ScopeKey = tuple[str, str, str | None]


def _key(named: Named, row: asyncpg.Record) -> ScopeKey:
    kind, scope_id = named(row)
    return kind, row["name"], scope_id


async def won_in_periods(
    conn: asyncpg.Connection,
    roster: Roster,
    periods: Sequence[PeriodBounds],
    kinds: Sequence[str],
) -> dict[ScopeKey, Decimal]:
    """The amount of deals won with a close time in each period, by (scope kind, period,
    scope id) for each of ``kinds``, in one statement."""
    if not periods or not kinds:
        return {}
    args = _Args()
    first = args(min(p.start_us for p in periods), "bigint")
    last = args(max(p.end_us for p in periods), "bigint")
    ctes = _deal_obs(
        args,
        roster,
        f"d.outcome = 'won' AND d.close_us >= {first} AND d.close_us < {last}",
        "b.close_us, m.amount",
    )
    select, group_by, named = _scopes(kinds)
    rows = await conn.fetch(
        f"""
        WITH {ctes}, {_periods(args, periods)}
        SELECT p.name, {select}, sum(obs.amount) AS actual
        FROM obs JOIN periods p ON obs.close_us >= p.start_us AND obs.close_us < p.end_us
        WHERE obs.amount IS NOT NULL
        {group_by}
        """,
        *args.values,
    )
    return {_key(named, r): r["actual"] for r in rows}


async def open_in_periods(
    conn: asyncpg.Connection,
    roster: Roster,
    periods: Sequence[PeriodBounds],
    kinds: Sequence[str],
) -> dict[ScopeKey, tuple[Decimal, int]]:
    """The amount and count of open deals expected to close in each period (expected close
    date; a deal with none counts in the period that holds now), by (scope kind, period,
    scope id) for each of ``kinds``, in one statement."""
    if not periods or not kinds:
        return {}
    args = _Args()
    ctes = _deal_obs(args, roster, "d.outcome IS NULL", "b.expected_close AS expected, m.amount")
    select, group_by, named = _scopes(kinds)
    rows = await conn.fetch(
        f"""
        WITH {ctes}, {_periods(args, periods)}
        SELECT p.name, {select}, sum(obs.amount) AS pipeline, count(*) AS n
        FROM obs JOIN periods p ON CASE WHEN obs.expected IS NULL THEN p.holds_now
                                       ELSE obs.expected >= p.start_day
                                            AND obs.expected < p.end_day END
        WHERE obs.amount IS NOT NULL
        {group_by}
        """,
        *args.values,
    )
    return {_key(named, r): (r["pipeline"], r["n"]) for r in rows}
