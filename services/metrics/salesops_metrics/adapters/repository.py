"""Metrics' SQL that writes: the event log, the projections, quotas and exchange rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from salesops_common.envelope import Envelope
from salesops_metrics.domain.facts import QuotaFact
from salesops_metrics.domain.projection import (
    TABLES,
    Assigned,
    Breached,
    CombinedChange,
    Effect,
    EntityChange,
    ForecastKnown,
    Merged,
    RulesetKnown,
    StageEntered,
    Table,
    combine,
)

KEYS = {table: f"{entity}_id" for entity, table in TABLES.items()}
# Derived from the event log; quotas, rates, dead letters and the log itself are not.
PROJECTIONS = (
    "event_counts",
    "reps",
    "accounts",
    "leads",
    "deals",
    "activities",
    "deal_stages",
    "lead_assignments",
    "sla_breaches",
    "lead_merges",
    "rulesets",
    "forecasts",
)
_MIN_STAMP = -(2**63)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- event counts and the event log ------------------------------------------------------------

# Sorted input, so every transaction locks the shared per-type rows in the same order.
_ADD_EVENT_COUNTS = """
    INSERT INTO event_counts (type, count)
    SELECT type, count FROM unnest($1::text[], $2::bigint[]) AS added (type, count)
    ORDER BY type
    ON CONFLICT (type) DO UPDATE SET count = event_counts.count + excluded.count
"""


async def add_event_counts(conn: asyncpg.Connection, counts: Mapping[str, int]) -> None:
    """One statement per batch, rows in type order (see event_tally)."""
    types = sorted(counts)
    await conn.execute(_ADD_EVENT_COUNTS, types, [counts[t] for t in types])


async def recount_events(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO event_counts (type, count) SELECT type, count(*) FROM event_log GROUP BY type"
    )


_LOG = """
    INSERT INTO event_log (event_id, type, source, subject, key, time, data)
    SELECT id, type, source, subject, key, time, data
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[], $7::jsonb[]) WITH ORDINALITY
         AS e (id, type, source, subject, key, time, data, arrival)
    ORDER BY arrival
    ON CONFLICT (event_id) DO NOTHING
"""


async def log_events(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Keep the batch's events in arrival order: a rebuild applies them in the same order."""
    await conn.execute(
        _LOG,
        [e.id for e in events],
        [e.type for e in events],
        [e.source for e in events],
        [e.subject for e in events],
        [e.key for e in events],
        [e.time for e in events],
        [orjson.dumps(e.data).decode() for e in events],
    )


async def logged_events(conn: asyncpg.Connection, *, after: int, limit: int) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT seq, event_id, type, source, subject, key, time, data::text AS data "
            "FROM event_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
    )


def envelope_of(row: Any) -> Envelope:
    return Envelope(
        type=row["type"],
        source=row["source"],
        subject=row["subject"],
        data=orjson.loads(row["data"]),
        id=row["event_id"],
        time=row["time"],
        key=row["key"],
    )


async def truncate_projections(conn: asyncpg.Connection) -> None:
    await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")


# --- projections ---------------------------------------------------------------------------------


def _merge_sql(table: Table) -> str:
    """Rows in id order, so that copies merging the same rows lock them in the same order."""
    key = KEYS[table]
    return f"""
        INSERT INTO {table} AS t ({key}, fields, stamps)
        SELECT id, fields, stamps
        FROM unnest($1::uuid[], $2::jsonb[], $3::jsonb[]) AS c (id, fields, stamps)
        ORDER BY id
        ON CONFLICT ({key}) DO UPDATE SET
            fields = t.fields || (
                SELECT coalesce(jsonb_object_agg(f.key, f.value), '{{}}'::jsonb)
                FROM jsonb_each(excluded.fields) AS f
                WHERE (excluded.stamps->>f.key)::bigint
                      >= coalesce((t.stamps->>f.key)::bigint, {_MIN_STAMP})),
            stamps = t.stamps || (
                SELECT coalesce(jsonb_object_agg(s.key, s.value), '{{}}'::jsonb)
                FROM jsonb_each(excluded.stamps) AS s
                WHERE (s.value)::bigint >= coalesce((t.stamps->>s.key)::bigint, {_MIN_STAMP}))
    """


_MERGE = {table: _merge_sql(table) for table in KEYS}


async def merge_entities(conn: asyncpg.Connection, changes: Sequence[CombinedChange]) -> None:
    """Each field takes the incoming value unless a newer one is known (ties: the incoming)."""
    by_table: dict[Table, list[CombinedChange]] = {}
    for change in changes:
        by_table.setdefault(change.table, []).append(change)
    for table, rows in sorted(by_table.items()):
        await conn.execute(
            _MERGE[table],
            [r.id for r in rows],
            [_json(r.fields) for r in rows],
            [_json(r.stamps) for r in rows],
        )


async def write_effects(conn: asyncpg.Connection, effects: Sequence[Effect]) -> None:
    """A batch's effects, a few statements whatever its size; facts keyed by event id."""
    await merge_entities(conn, combine(e for e in effects if isinstance(e, EntityChange)))
    stages = [e for e in effects if isinstance(e, StageEntered)]
    if stages:
        await conn.execute(
            """
            INSERT INTO deal_stages (event_id, deal_id, stage, entered_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
            ON CONFLICT (event_id) DO NOTHING
            """,
            [e.event_id for e in stages],
            [e.deal_id for e in stages],
            [e.stage for e in stages],
            [e.at for e in stages],
        )
    assignments = [e for e in effects if isinstance(e, Assigned)]
    if assignments:
        await conn.execute(
            """
            INSERT INTO lead_assignments (event_id, lead_id, rep_id, territory_id, assigned_at,
                                          event_time)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                                 $5::timestamptz[], $6::timestamptz[])
            ON CONFLICT (event_id) DO NOTHING
            """,
            [a.event_id for a in assignments],
            [a.fact.lead_id for a in assignments],
            [a.fact.rep_id for a in assignments],
            [a.fact.territory_id for a in assignments],
            [a.fact.assigned_at for a in assignments],
            [a.event_time for a in assignments],
        )
    for effect in effects:
        if isinstance(effect, Breached | Merged | RulesetKnown | ForecastKnown):
            await _record_fact(conn, effect)


async def _record_fact(
    conn: asyncpg.Connection, effect: Breached | Merged | RulesetKnown | ForecastKnown
) -> None:
    if isinstance(effect, Breached):
        b = effect.fact
        await conn.execute(
            "INSERT INTO sla_breaches (event_id, lead_id, rep_id, breached_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            effect.event_id,
            b.lead_id,
            b.rep_id,
            b.breached_at,
        )
    elif isinstance(effect, Merged):
        m = effect.fact
        await conn.execute(
            "INSERT INTO lead_merges (event_id, lead_id, merged_into_id, rule, event_time) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            effect.event_id,
            m.id,
            m.merged_into_id,
            m.rule,
            effect.event_time,
        )
    elif isinstance(effect, RulesetKnown):
        # A version's content never changes: the first copy stands.
        await conn.execute(
            "INSERT INTO rulesets (version, ruleset, event_time) VALUES ($1, $2::jsonb, $3) "
            "ON CONFLICT (version) DO NOTHING",
            effect.fact.ruleset_version,
            _json(effect.fact.ruleset),
            effect.event_time,
        )
    else:
        fc = effect.fact
        await conn.execute(
            "INSERT INTO forecasts (forecast_id, as_of, period, scope_kind, scope_id, "
            "currency, point) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (forecast_id) DO NOTHING",
            fc.forecast_id,
            fc.as_of,
            fc.period,
            fc.scope.kind,
            fc.scope.id,
            fc.currency,
            fc.point,
        )


async def record_dead_letter(conn: asyncpg.Connection, event: Envelope) -> None:
    await conn.execute(
        "INSERT INTO dead_letters (event_id, type, event_time) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING",
        event.id,
        event.type,
        event.time,
    )


# --- quotas and exchange rates (set over REST) --------------------------------------------------


async def save_quotas(conn: asyncpg.Connection, quotas: Sequence[QuotaFact]) -> None:
    await conn.executemany(
        """
        INSERT INTO quotas (period, scope_kind, scope_id, amount, currency)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (period, scope_kind, scope_id)
        DO UPDATE SET amount = excluded.amount, currency = excluded.currency
        """,
        [(q.period, q.scope_kind, q.scope_id or "", q.amount, q.currency) for q in quotas],
    )


async def delete_quota(
    conn: asyncpg.Connection, *, period: str, scope_kind: str, scope_id: str | None
) -> bool:
    status: str = await conn.execute(
        "DELETE FROM quotas WHERE period = $1 AND scope_kind = $2 AND scope_id = $3",
        period,
        scope_kind,
        scope_id or "",
    )
    return status != "DELETE 0"


async def save_rates(conn: asyncpg.Connection, rates: Mapping[str, Decimal]) -> None:
    await conn.executemany(
        """
        INSERT INTO exchange_rates (currency, rate, updated_at) VALUES ($1, $2, now())
        ON CONFLICT (currency) DO UPDATE SET rate = excluded.rate, updated_at = now()
        """,
        list(rates.items()),
    )


async def delete_rate(conn: asyncpg.Connection, currency: str) -> bool:
    status: str = await conn.execute("DELETE FROM exchange_rates WHERE currency = $1", currency)
    return status != "DELETE 0"
