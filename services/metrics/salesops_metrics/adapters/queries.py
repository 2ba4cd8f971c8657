"""Metrics' SQL that reads: the facts each KPI is computed from, filtered by window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common.events import WorkingHours
from salesops_metrics.domain.dependencies import DataVersion
from salesops_metrics.domain.facts import (
    AccountFact,
    AssignmentFact,
    DealFact,
    ForecastFact,
    LeadFact,
    QuotaFact,
    RepFact,
    StageEntry,
    TouchFact,
)
from salesops_metrics.domain.money import Rates
from salesops_metrics.domain.periods import Window
from salesops_metrics.domain.projection import micros
from salesops_metrics.domain.territories import TerritoryModel, territory_model

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(us: Any) -> datetime | None:
    return _EPOCH + timedelta(microseconds=int(us)) if us is not None else None


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bounds_us(window: Window) -> tuple[int | None, int | None]:
    return (
        micros(window.start) if window.start else None,
        micros(window.end) if window.end else None,
    )


def _in(column: str, first: int) -> str:
    return (
        f"(${first}::bigint IS NULL OR {column} >= ${first}) "
        f"AND (${first + 1}::bigint IS NULL OR {column} < ${first + 1})"
    )


def _in_time(column: str, first: int) -> str:
    return (
        f"(${first}::timestamptz IS NULL OR {column} >= ${first}) "
        f"AND (${first + 1}::timestamptz IS NULL OR {column} < ${first + 1})"
    )


async def for_reports(conn: asyncpg.Connection) -> None:
    """Plan a read's statements for its window, each on one core: their work is a few
    thousand rows, not worth parallel workers on a machine the consumers share."""
    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")


# --- roster: reps, accounts, territories, rates ----------------------------------------------


async def rates(conn: asyncpg.Connection, reporting: str) -> Rates:
    rows = await conn.fetch("SELECT currency, rate FROM exchange_rates")
    return Rates(reporting.upper(), {r["currency"]: r["rate"] for r in rows})


def _hours(value: Any) -> WorkingHours | None:
    if not isinstance(value, dict):
        return None
    try:
        return WorkingHours.model_validate(value)
    except ValueError:
        return None


def _rep(rep_id: UUID, f: dict[str, Any]) -> RepFact:
    tools = f.get("licensed_tools")
    active = f.get("active")
    return RepFact(
        id=rep_id,
        email=_str(f.get("email")),
        name=_str(f.get("name")),
        active=active if isinstance(active, bool) else None,
        role=_str(f.get("role")),
        manager_id=_uuid(f.get("manager_id")),
        team=_str(f.get("team")),
        time_zone=_str(f.get("time_zone")),
        working_hours=_hours(f.get("working_hours")),
        licensed_tools=tuple(t for t in tools if isinstance(t, str))
        if isinstance(tools, list)
        else (),
    )


async def reps(conn: asyncpg.Connection) -> dict[UUID, RepFact]:
    rows = await conn.fetch("SELECT rep_id, fields::text AS f FROM reps WHERE NOT deleted")
    return {r["rep_id"]: _rep(r["rep_id"], orjson.loads(r["f"])) for r in rows}


async def accounts(conn: asyncpg.Connection) -> dict[UUID, AccountFact]:
    rows = await conn.fetch("SELECT account_id, fields::text AS f FROM accounts WHERE NOT deleted")
    out = {}
    for r in rows:
        f = orjson.loads(r["f"])
        out[r["account_id"]] = AccountFact(
            id=r["account_id"],
            industry=_str(f.get("industry")),
            employees=_int(f.get("employees")),
            territory_id=_str(f.get("territory_id")),
        )
    return out


async def territories(conn: asyncpg.Connection) -> TerritoryModel:
    row = await conn.fetchrow(
        "SELECT version, ruleset::text AS r FROM rulesets ORDER BY version DESC LIMIT 1"
    )
    if row is None:
        return TerritoryModel()
    return territory_model(row["version"], orjson.loads(row["r"]))


# --- deals ------------------------------------------------------------------------------------

_DEAL_COLUMNS = "deal_id, fields::text AS f, outcome, created_us, close_us"


def _deal(r: Any) -> DealFact:
    f = orjson.loads(r["f"])
    return DealFact(
        id=r["deal_id"],
        owner_id=_uuid(f.get("owner_id")),
        account_id=_uuid(f.get("account_id")),
        lead_id=_uuid(f.get("lead_id")),
        amount=_decimal(f.get("amount")),
        currency=_str(f.get("currency")),
        stage=_str(f.get("stage")),
        created=_at(r["created_us"]),
        closed=_at(r["close_us"]),
        outcome=r["outcome"],
        expected_close=_day(f.get("expected_close_date")),
    )


async def deals_closed(conn: asyncpg.Connection, window: Window) -> list[DealFact]:
    rows = await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE NOT deleted AND close_us IS NOT NULL "
        f"AND {_in('close_us', 1)}",
        *_bounds_us(window),
    )
    return [_deal(r) for r in rows]


async def deals_created(
    conn: asyncpg.Connection, window: Window, *, open_only: bool = False
) -> list[DealFact]:
    still_open = "AND outcome IS NULL" if open_only else ""
    rows = await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE NOT deleted {still_open} "
        f"AND created_us IS NOT NULL AND {_in('created_us', 1)}",
        *_bounds_us(window),
    )
    return [_deal(r) for r in rows]


async def every_deal(conn: asyncpg.Connection) -> list[DealFact]:
    rows = await conn.fetch(f"SELECT {_DEAL_COLUMNS} FROM deals WHERE NOT deleted")
    return [_deal(r) for r in rows]


async def lead_sources(
    conn: asyncpg.Connection, deals: Sequence[DealFact]
) -> dict[UUID, str | None]:
    ids = list({d.lead_id for d in deals if d.lead_id})
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT lead_id, fields->>'lead_source' AS s FROM leads WHERE lead_id = ANY($1::uuid[])",
        ids,
    )
    return {r["lead_id"]: r["s"] for r in rows}


async def stage_entries(
    conn: asyncpg.Connection, window: Window
) -> tuple[list[StageEntry], list[DealFact]]:
    """Every stage entry of the deals that entered a stage in the window, and those deals."""
    rows = await conn.fetch(
        f"""
        SELECT event_id, deal_id, stage, entered_at FROM deal_stages
        WHERE deal_id IN (SELECT deal_id FROM deal_stages WHERE {_in_time("entered_at", 1)})
        """,
        window.start,
        window.end,
    )
    entries = [StageEntry(r["deal_id"], r["stage"], r["entered_at"], r["event_id"]) for r in rows]
    ids = list({e.deal_id for e in entries})
    deal_rows = await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE NOT deleted AND deal_id = ANY($1::uuid[])", ids
    )
    return entries, [_deal(r) for r in deal_rows]


# --- leads ------------------------------------------------------------------------------------


def _lead(r: Any) -> LeadFact:
    f = orjson.loads(r["f"])
    return LeadFact(
        id=r["lead_id"],
        lead_source=_str(f.get("lead_source")),
        industry=_str(f.get("industry")),
        employees=_int(f.get("employees")),
        account_id=_uuid(f.get("account_id")),
        owner_id=_uuid(f.get("owner_id")),
        created=_at(r["created_us"]),
        converted=bool(r["converted"]),
    )


_LEAD_COLUMNS = """
    l.lead_id, l.fields::text AS f, l.created_us,
    (l.fields->>'converted_at' IS NOT NULL
     OR EXISTS (SELECT 1 FROM deals d WHERE d.lead_id = l.lead_id AND NOT d.deleted)) AS converted
"""


def _assignment(r: Any) -> AssignmentFact:
    return AssignmentFact(
        event_id=r["event_id"],
        lead_id=r["lead_id"],
        rep_id=r["rep_id"],
        territory_id=r["territory_id"],
        assigned_at=r["assigned_at"],
        event_time=r["event_time"],
    )


async def assignments_of(conn: asyncpg.Connection, lead_ids: list[UUID]) -> list[AssignmentFact]:
    rows = await conn.fetch(
        "SELECT event_id, lead_id, rep_id, territory_id, assigned_at, event_time "
        "FROM lead_assignments WHERE lead_id = ANY($1::uuid[])",
        lead_ids,
    )
    return [_assignment(r) for r in rows]


async def leads_created(conn: asyncpg.Connection, window: Window) -> list[LeadFact]:
    rows = await conn.fetch(
        f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE NOT l.deleted AND NOT l.merged "
        f"AND l.created_us IS NOT NULL AND {_in('l.created_us', 1)}",
        *_bounds_us(window),
    )
    return [_lead(r) for r in rows]


async def leads_by_id(conn: asyncpg.Connection, lead_ids: list[UUID]) -> dict[UUID, LeadFact]:
    rows = await conn.fetch(
        f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE NOT l.deleted AND NOT l.merged "
        "AND l.lead_id = ANY($1::uuid[])",
        lead_ids,
    )
    return {r["lead_id"]: _lead(r) for r in rows}


async def outbound_touches(conn: asyncpg.Connection, lead_ids: list[UUID]) -> list[TouchFact]:
    rows = await conn.fetch(
        """
        SELECT lead_id, (fields->>'rep_id')::uuid AS rep_id, occurred_us FROM activities
        WHERE lead_id = ANY($1::uuid[]) AND NOT deleted AND occurred_us IS NOT NULL
          AND fields->>'direction' = 'outbound' AND fields->>'rep_id' IS NOT NULL
        """,
        lead_ids,
    )
    return [TouchFact(r["lead_id"], r["rep_id"], _at(r["occurred_us"]) or _EPOCH) for r in rows]


async def leads_assigned_in(conn: asyncpg.Connection, window: Window) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT lead_id FROM lead_assignments "
        f"WHERE rep_id IS NOT NULL AND {_in_time('assigned_at', 1)}",
        window.start,
        window.end,
    )
    return [r["lead_id"] for r in rows]


async def breaches_of(conn: asyncpg.Connection, lead_ids: list[UUID]) -> set[tuple[UUID, UUID]]:
    rows = await conn.fetch(
        "SELECT DISTINCT lead_id, rep_id FROM sla_breaches "
        "WHERE lead_id = ANY($1::uuid[]) AND rep_id IS NOT NULL",
        lead_ids,
    )
    return {(r["lead_id"], r["rep_id"]) for r in rows}


# --- activities, forecasts, quotas, data quality --------------------------------------------


async def tools_used(conn: asyncpg.Connection, window: Window) -> set[tuple[UUID, str]]:
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT rep_id, tool FROM activities
        WHERE NOT deleted AND rep_id IS NOT NULL AND tool IS NOT NULL
          AND occurred_us IS NOT NULL AND {_in("occurred_us", 1)}
        """,
        *_bounds_us(window),
    )
    return {(r["rep_id"], r["tool"]) for r in rows}


async def forecasts(conn: asyncpg.Connection) -> list[ForecastFact]:
    rows = await conn.fetch(
        "SELECT forecast_id, as_of, period, scope_kind, scope_id, currency, point FROM forecasts"
    )
    return [
        ForecastFact(
            r["forecast_id"],
            r["as_of"],
            r["period"],
            r["scope_kind"],
            r["scope_id"],
            r["currency"],
            r["point"],
        )
        for r in rows
    ]


async def quotas(conn: asyncpg.Connection) -> list[QuotaFact]:
    rows = await conn.fetch(
        "SELECT period, scope_kind, scope_id, amount, currency FROM quotas "
        "ORDER BY period, scope_kind, scope_id"
    )
    return [
        QuotaFact(r["period"], r["scope_kind"], r["scope_id"] or None, r["amount"], r["currency"])
        for r in rows
    ]


async def lead_events(conn: asyncpg.Connection, window: Window) -> tuple[int, int]:
    """(leads created, duplicates found by ingest) by event time in the window."""
    row = await conn.fetchrow(
        f"""
        SELECT
            (SELECT count(*) FROM leads
             WHERE created_event_us IS NOT NULL AND {_in("created_event_us", 1)}) AS created,
            (SELECT count(*) FROM lead_merges
             WHERE rule <> 'crm_merge' AND {_in_time("event_time", 3)}) AS duplicates
        """,
        *_bounds_us(window),
        window.start,
        window.end,
    )
    assert row is not None
    return int(row["created"]), int(row["duplicates"])


async def dead_letters(conn: asyncpg.Connection, window: Window) -> int:
    count = await conn.fetchval(
        f"SELECT count(*) FROM dead_letters WHERE {_in_time('event_time', 1)}",
        window.start,
        window.end,
    )
    return int(count)


async def events_by_type(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT type, count FROM event_counts ORDER BY type")
    return {r["type"]: int(r["count"]) for r in rows}


async def totals(conn: asyncpg.Connection) -> dict[str, int]:
    """The all-time counts exposed as counters, in one statement (one snapshot)."""
    row = await conn.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM deals WHERE NOT deleted AND outcome = 'won') AS deals_won,
            (SELECT count(*) FROM deals WHERE NOT deleted AND outcome = 'lost') AS deals_lost,
            (SELECT count(*) FROM lead_journeys WHERE first_to_rep_us IS NOT NULL)
                AS leads_assigned,
            (SELECT count(*) FROM dead_letters) AS dead_letters
        """
    )
    assert row is not None
    return {name: int(value) for name, value in row.items()}


async def version(conn: asyncpg.Connection) -> DataVersion:
    """What every KPI depends on besides the clock, in a few small reads: events applied by
    type (every consuming transaction adds to the counts as it commits, in whatever order
    copies commit), dead letters, and the quotas and rates as they are set."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT coalesce(array_agg(type ORDER BY type), '{}') FROM event_counts) AS types,
               (SELECT coalesce(array_agg(count ORDER BY type), '{}') FROM event_counts)
                   AS counts,
               (SELECT count(*) FROM dead_letters) AS dead_letters,
               md5((SELECT coalesce(string_agg(
                        concat_ws('/', period, scope_kind, scope_id, amount, currency), ','
                        ORDER BY period, scope_kind, scope_id), '') FROM quotas)) AS quotas,
               md5((SELECT coalesce(string_agg(concat_ws('/', currency, rate), ','
                        ORDER BY currency), '') FROM exchange_rates)) AS rates
        """
    )
    assert row is not None
    return DataVersion(
        tuple(zip(row["types"], map(int, row["counts"]), strict=True)),
        int(row["dead_letters"]),
        str(row["quotas"]),
        str(row["rates"]),
    )
