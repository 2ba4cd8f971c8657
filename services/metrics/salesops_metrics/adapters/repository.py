"""Metrics' SQL that writes: the event log, the projections, quotas and exchange rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common.envelope import Envelope
from salesops_common.erasure import PERSONAL_FIELDS, null_personal_sql
from salesops_metrics.domain.facts import AssignmentFact, QuotaFact, StageEntry
from salesops_metrics.domain.projection import (
    TABLES,
    Breached,
    CombinedChange,
    Effect,
    EntityChange,
    Erased,
    ForecastKnown,
    IndustryNamed,
    Merged,
    RulesetKnown,
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
    "industry_keys",
    "lead_journeys",
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


_LOG_COLUMNS = ("event_id", "type", "source", "subject", "key", "time", "data")


async def log_events(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Keep the batch's events in arrival order: a rebuild applies them in the same order.

    ``COPY``, no conflict check: the inbox, in the same transaction, lets each event through
    once (migration 0004)."""
    if not events:
        return
    await conn.copy_records_to_table(
        "event_log",
        records=[
            (e.id, e.type, e.source, e.subject, e.key, e.time, orjson.dumps(e.data).decode())
            for e in events
        ],
        columns=_LOG_COLUMNS,
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


async def empty_projections(conn: asyncpg.Connection) -> None:
    """DELETE, not TRUNCATE: TRUNCATE locks each table exclusively, one after the other, and
    a KPI read (one repeatable-read transaction over many tables) holding one of them while
    going on to another the rebuild already holds was a deadlock (a 500 from the rebuild).
    DELETE leaves readers alone: they see the old rows until the rebuild commits."""
    for table in PROJECTIONS:
        await conn.execute(f"DELETE FROM {table}")


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
    """A batch's effects, a few statements whatever its size; facts keyed by event id. Then
    the journeys of the leads whose assignments or touches changed."""
    changes = combine(e for e in effects if isinstance(e, EntityChange))
    journeys = await _leads_touched(conn, changes)
    journeys |= {e.lead_id for e in effects if isinstance(e, AssignmentFact)}
    await merge_entities(conn, changes)
    stages = [e for e in effects if isinstance(e, StageEntry)]
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
            [e.entered for e in stages],
        )
        await refresh_stage_paths(conn, {e.deal_id for e in stages})
    assignments = [e for e in effects if isinstance(e, AssignmentFact)]
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
            [a.lead_id for a in assignments],
            [a.rep_id for a in assignments],
            [a.territory_id for a in assignments],
            [a.assigned_at for a in assignments],
            [a.event_time for a in assignments],
        )
    breaches = [e for e in effects if isinstance(e, Breached)]
    if breaches:
        await conn.execute(
            """
            INSERT INTO sla_breaches (event_id, lead_id, rep_id, breached_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[])
            ON CONFLICT (event_id) DO NOTHING
            """,
            [b.event_id for b in breaches],
            [b.fact.lead_id for b in breaches],
            [b.fact.rep_id for b in breaches],
            [b.fact.breached_at for b in breaches],
        )
    await _name_industries(conn, [e for e in effects if isinstance(e, IndustryNamed)])
    await erase_logged_leads(conn, [e.lead_id for e in effects if isinstance(e, Erased)])
    for effect in effects:
        if isinstance(effect, Merged | RulesetKnown | ForecastKnown):
            await _record_fact(conn, effect)
    await refresh_journeys(conn, journeys)


async def erase_logged_leads(conn: asyncpg.Connection, lead_ids: Sequence[UUID]) -> None:
    """Null the personal fields in the logged events of ``lead_ids`` (their own lead events,
    the only ones that carry any). A scan of the log: erasures are rare."""
    if lead_ids:
        await conn.execute(
            f"UPDATE event_log SET data = {null_personal_sql('data', '$2::text[]')} "
            "WHERE subject = ANY($1::text[]) AND type LIKE 'lead.%' AND data ?| $2::text[]",
            [str(i) for i in lead_ids],
            list(PERSONAL_FIELDS),
        )


async def _leads_touched(conn: asyncpg.Connection, changes: Sequence[CombinedChange]) -> set[UUID]:
    """The leads whose touches these activity changes may change: the lead each activity
    names now and the one it will name."""
    activities = [c for c in changes if c.table == "activities"]
    if not activities:
        return set()
    rows = await conn.fetch(
        "SELECT lead_id FROM activities "
        "WHERE activity_id = ANY($1::uuid[]) AND lead_id IS NOT NULL",
        [c.id for c in activities],
    )
    named = {c.fields["lead_id"] for c in activities if c.fields.get("lead_id")}
    return {r["lead_id"] for r in rows} | {UUID(str(lead_id)) for lead_id in named}


# Another copy may be applying the assignment while this one applies the touch: each works a
# lead's journey out under the lead's lock, from what is committed by then (read committed),
# so the later one sees both. The two-key form of the locks keeps them apart from the
# rebuild's and the migrations' one-key locks.
JOURNEY_LOCKS = 0x4A52
# Each part looks its leads up by index (``= ANY`` of the batch's ids): joined to the ids as a
# table, the planner hashed them and scanned all of lead_assignments, twice per batch.
JOURNEYS = """
    WITH latest AS (
        SELECT DISTINCT ON (x.lead_id) x.lead_id, x.rep_id, x.territory_id
        FROM lead_assignments x WHERE x.lead_id = ANY($1::uuid[])
        ORDER BY x.lead_id, x.event_time DESC, x.event_id DESC
    ),
    first_to_rep AS (
        SELECT x.lead_id, (extract(epoch FROM min(x.assigned_at)) * 1000000)::bigint AS us
        FROM lead_assignments x
        WHERE x.lead_id = ANY($1::uuid[]) AND x.rep_id IS NOT NULL GROUP BY x.lead_id
    ),
    touch AS (
        SELECT DISTINCT ON (t.lead_id) t.lead_id, t.occurred_us AS us, t.rep_id
        FROM activities t
        WHERE t.lead_id = ANY($1::uuid[])
          AND NOT t.deleted AND t.occurred_us IS NOT NULL AND t.outbound AND t.rep_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM lead_assignments x
                      WHERE x.lead_id = ANY($1::uuid[])
                        AND x.lead_id = t.lead_id AND x.rep_id = t.rep_id)
        ORDER BY t.lead_id, t.occurred_us, t.rep_id
    )
    INSERT INTO lead_journeys AS j
        (lead_id, latest_rep_id, latest_territory, first_to_rep_us, touched_us, touched_by)
    SELECT latest.lead_id, latest.rep_id, latest.territory_id, f.us, t.us, t.rep_id
    FROM latest LEFT JOIN first_to_rep f USING (lead_id) LEFT JOIN touch t USING (lead_id)
    ORDER BY latest.lead_id
    ON CONFLICT (lead_id) DO UPDATE SET
        latest_rep_id = excluded.latest_rep_id,
        latest_territory = excluded.latest_territory,
        first_to_rep_us = excluded.first_to_rep_us,
        touched_us = excluded.touched_us,
        touched_by = excluded.touched_by
"""


async def refresh_journeys(conn: asyncpg.Connection, lead_ids: set[UUID]) -> None:
    """Work the journeys of ``lead_ids`` out again from their assignments and activities
    (domain lead_kpis.journeys); a lead never assigned has none."""
    if lead_ids:
        await _lock(conn, JOURNEY_LOCKS, lead_ids)
        await conn.execute(JOURNEYS, sorted(lead_ids))


async def _lock(conn: asyncpg.Connection, kind: int, ids: set[UUID]) -> None:
    """Transaction locks on ``ids`` of one kind, taken in key order (unnest yields the keys
    in the array's order)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k",
        kind,
        sorted({int.from_bytes(i.bytes[:4], "big", signed=True) for i in ids}),
    )


# Each deal's stage path (domain deal_kpis.stage_path): its entries by time, then event id, a
# repeat of the current stage dropped (``kept`` false), each kept one with the stage entered
# next. An entry may arrive after later ones: the whole path of the deal is worked out again.
STAGE_LOCKS = 0x5354
STAGE_PATHS = """
    WITH path AS (
        SELECT event_id, deal_id, stage, entered_at,
               lag(stage) OVER (PARTITION BY deal_id ORDER BY entered_at, event_id) AS before
        FROM deal_stages WHERE deal_id = ANY($1::uuid[])
    ),
    kept AS (
        SELECT event_id,
               lead(stage) OVER (PARTITION BY deal_id ORDER BY entered_at, event_id) AS next
        FROM path WHERE before IS DISTINCT FROM stage
    ),
    paths AS (
        SELECT path.event_id, kept.event_id IS NOT NULL AS kept, kept.next
        FROM path LEFT JOIN kept USING (event_id)
    )
    UPDATE deal_stages s SET kept = p.kept, next_stage = p.next
    FROM paths p
    WHERE s.event_id = p.event_id AND (s.kept, s.next_stage) IS DISTINCT FROM (p.kept, p.next)
"""


async def refresh_stage_paths(conn: asyncpg.Connection, deal_ids: set[UUID]) -> None:
    if deal_ids:
        await _lock(conn, STAGE_LOCKS, deal_ids)
        await conn.execute(STAGE_PATHS, sorted(deal_ids))


async def _name_industries(conn: asyncpg.Connection, named: Sequence[IndustryNamed]) -> None:
    """A pure function of the name, so the first copy stands; in name order, so copies
    naming the same new industries never wait on each other in opposite orders."""
    if not named:
        return
    keys = {n.raw: n.key for n in named}
    raws = sorted(keys)
    await conn.execute(
        "INSERT INTO industry_keys (raw, key) SELECT * FROM unnest($1::text[], $2::text[]) "
        "ON CONFLICT (raw) DO NOTHING",
        raws,
        [keys[r] for r in raws],
    )


async def _record_fact(
    conn: asyncpg.Connection, effect: Merged | RulesetKnown | ForecastKnown
) -> None:
    if isinstance(effect, Merged):
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
