"""A /metrics snapshot reads again only the families of KPIs whose tables changed since the
snapshot before (domain/dependencies.py) and keeps the others' rows. Held to the database:

- applying each event type's events writes no table its entry in WRITES leaves out, and
  computing each family scans no table its entry in READS leaves out
  (``pg_stat_xact_user_tables``, which counts what the transaction itself did);
- after each event type's events, and after quotas, rates and a dead letter change, the
  snapshot computed from the one before equals one computed whole, every KPI by every
  grouping over all time, and it read again exactly the families the change names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.envelope import Envelope
from salesops_common.settings import database_dsn
from salesops_metrics.adapters import repository
from salesops_metrics.adapters.prometheus import groupings
from salesops_metrics.bootstrap import create_app
from salesops_metrics.domain.dependencies import READS, WRITES, stale_families
from salesops_metrics.domain.facts import QuotaFact
from salesops_metrics.domain.kpis import KPIS
from salesops_metrics.domain.periods import ALL_TIME
from salesops_metrics.domain.projection import effects_of
from salesops_metrics.service_layer.kpis import Exposition, Kpis, Reader
from salesops_metrics.service_layer.reports import KpiSettings, Report
from tests.metrics.edges import edge_events
from tests.metrics.scenario import QUOTAS, RATES, Scenario
from tests.metrics.support import ADMIN, NOW, fixed_clock, metrics_settings
from tests.support import Isolation, running

pytestmark = pytest.mark.integration
SCENARIO = Scenario(seed=11)
EVENTS = [*SCENARIO.events, *edge_events(SCENARIO.events)]
EVERY_GROUPING = groupings(rep_labels=True)
# What the consumer writes besides the projections: the log and the counts by type.
BOOKKEEPING = {"event_log", "event_counts"}
# The families /metrics shows as gauges (dead letters: a counter, read whole every time).
EXPOSED = {kpi.basis for kpi in KPIS.values() if not kpi.counter}


def held_back(events: Sequence[Envelope]) -> tuple[list[Envelope], dict[str, list[Envelope]]]:
    """The events but the last third (at least one) of each type's, and those, by type, in
    the order their types first appear."""
    counts = Counter(e.type for e in events)
    seen: Counter[str] = Counter()
    base: list[Envelope] = []
    later: dict[str, list[Envelope]] = {}
    for event in events:
        seen[event.type] += 1
        if seen[event.type] <= counts[event.type] - max(1, counts[event.type] // 3):
            base.append(event)
        else:
            later.setdefault(event.type, []).append(event)
    return base, later


async def write(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """As the consumer's batch writes them (service_layer/intake.py)."""
    await repository.log_events(conn, events)
    await repository.write_effects(conn, [e for event in events for e in effects_of(event)])
    await repository.add_event_counts(conn, Counter(e.type for e in events))


async def counted(conn: asyncpg.Connection, *, written: bool) -> Counter[str]:
    """Rows written, or scans, by table, as this backend counts them not yet reported (which
    may include what its transactions before did: compare two readings)."""
    what = "n_tup_ins + n_tup_upd + n_tup_del" if written else "seq_scan + coalesce(idx_scan, 0)"
    rows = await conn.fetch(f"SELECT relname, {what} AS n FROM pg_stat_xact_user_tables")
    return Counter({r["relname"]: r["n"] for r in rows})


@asynccontextmanager
async def touching(conn: asyncpg.Connection, *, written: bool) -> AsyncIterator[set[str]]:
    """The tables the block wrote rows of, or scanned."""
    found: set[str] = set()
    before = await counted(conn, written=written)
    yield found
    found.update((await counted(conn, written=written) - before).keys())


@dataclass
class Database:
    dsn: str
    pool: asyncpg.Pool
    kpis: Kpis
    read: Reader


@pytest.fixture(scope="module")
async def database(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> AsyncIterator[tuple[Database, dict[str, list[Envelope]]]]:
    """The service's database (migrated by starting it) with the scenario but the events
    held back, and its quotas and rates."""
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    app = create_app(metrics_settings(iso), clock=fixed_clock(NOW))
    async with running(app, consumers=False) as client:
        assert (await client.put("/v1/quotas", json=QUOTAS, headers=ADMIN)).status_code == 200
        rates = await client.put("/v1/exchange-rates", json=RATES, headers=ADMIN)
        assert rates.status_code == 200
    dsn = database_dsn(postgres.url, iso.database("metrics"))
    base, later = held_back(EVENTS)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await write(conn, base)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None

    @asynccontextmanager
    async def read(lanes: int) -> AsyncIterator[list[asyncpg.Connection]]:
        async with (
            pool.acquire() as reader,
            reader.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield [reader]

    try:
        kpis = Kpis(read, settings=KpiSettings(), clock=fixed_clock(NOW))
        yield Database(dsn, pool, kpis, read), later
    finally:
        await pool.close()


async def expositions(db: Database, previous: Exposition) -> tuple[Exposition, Exposition]:
    """(computed from ``previous``, computed whole)."""
    kept = await db.kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME, previous=previous)
    whole = await db.kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME)
    return kept, whole


def same(one: Exposition, other: Exposition) -> bool:
    def histograms(e: Exposition) -> dict[tuple[str, str | None], list[str]]:
        return {key: sorted(map(repr, found)) for key, found in e.histograms.items()}

    return (
        one.rows == other.rows
        and histograms(one) == histograms(other)
        and one.totals == other.totals
        and one.events_by_type == other.events_by_type
    )


def read_again(after: Exposition, before: Exposition) -> set[str]:
    return {basis for basis, stamp in after.stamps.items() if stamp != before.stamps.get(basis)}


async def test_each_change_reads_again_what_it_names_and_the_snapshot_equals_a_whole_one(
    database: tuple[Database, dict[str, list[Envelope]]],
) -> None:
    db, later = database
    previous = await db.kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME)
    assert set(previous.stamps) == EXPOSED
    kept_somewhere: set[str] = set()

    async def check(change: str, *, families: bool = True) -> None:
        nonlocal previous
        kept, whole = await expositions(db, previous)
        assert same(kept, whole), change
        assert kept.version != previous.version, change
        expected = stale_families(previous.version, kept.version) & EXPOSED  # type: ignore[arg-type]
        assert bool(expected) == families, change
        assert read_again(kept, previous) == expected, change
        kept_somewhere.update(EXPOSED - expected)
        previous = kept

    for type_name, events in later.items():
        async with db.pool.acquire() as conn, conn.transaction():
            async with touching(conn, written=True) as written:
                await write(conn, events)
        written -= BOOKKEEPING
        assert written, type_name
        declared = WRITES.get(type_name)  # a type not named makes every family stale
        assert declared is None or written <= declared, (type_name, written - (declared or set()))
        await check(type_name)

    async with db.pool.acquire() as conn, conn.transaction():
        quota = QuotaFact("2026-Q4", "team", "West", Decimal("12345"), "USD")
        await repository.save_quotas(conn, [quota])
    await check("a quota")
    async with db.pool.acquire() as conn, conn.transaction():
        await repository.save_rates(conn, {"EUR": Decimal("1.25")})
    await check("a rate")
    async with db.pool.acquire() as conn, conn.transaction():
        await repository.record_dead_letter(conn, EVENTS[0])
    await check("a dead letter", families=False)  # the counter only
    # the incremental path was taken: some change left each family alone
    assert kept_somewhere == EXPOSED


async def test_paced_a_family_that_changed_keeps_its_rows_until_it_rested_as_long_as_it_took(
    database: tuple[Database, dict[str, list[Envelope]]],
) -> None:
    """The background task's snapshots are paced: a family whose tables changed is read
    again only once it rested, from the end of its read, as long as the read took; until
    then the snapshot keeps its rows and says it is not complete. Unpaced, or once due, the
    snapshot equals one computed whole."""
    db, _ = database
    clock = [1000.0]
    kpis = Kpis(
        db.read, settings=KpiSettings(), clock=fixed_clock(NOW), pace_clock=lambda: clock[0]
    )
    first = await kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME)
    read = first.stamps["quota"]
    assert first.complete
    assert read.took > 0
    assert 1000.0 + read.took <= read.ended < 1010.0
    async with db.pool.acquire() as conn, conn.transaction():
        quota = QuotaFact("2026-Q4", "territory", "paced", Decimal("1000"), "USD")
        await repository.save_quotas(conn, [quota])
    clock[0] = read.ended + 0.9 * read.took
    held = await kpis.exposition(
        groupings=EVERY_GROUPING, window=ALL_TIME, previous=first, paced=True
    )
    assert not held.complete
    assert held.stamps["quota"] == read
    assert read_again(held, first) == set()
    whole = await kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME)
    unpaced = await kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME, previous=held)
    assert unpaced.complete
    assert read_again(unpaced, held) == {"quota"}
    assert same(unpaced, whole)
    clock[0] = read.ended + read.took
    due = await kpis.exposition(
        groupings=EVERY_GROUPING, window=ALL_TIME, previous=held, paced=True
    )
    assert due.complete
    assert read_again(due, held) == {"quota"}
    assert same(due, whole)


async def test_a_snapshot_with_nothing_changed_reads_nothing_again(
    database: tuple[Database, dict[str, list[Envelope]]],
) -> None:
    db, _ = database
    first = await db.kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME)
    again = await db.kpis.exposition(groupings=EVERY_GROUPING, window=ALL_TIME, previous=first)
    assert read_again(again, first) == set()
    assert same(again, first)


@pytest.mark.parametrize("basis", sorted(READS))
async def test_a_family_scans_only_the_tables_it_names(
    database: tuple[Database, dict[str, list[Envelope]]], basis: str
) -> None:
    db, _ = database
    wanted = [(k, by) for k in KPIS.values() if k.basis == basis for by in (None, *k.group_by)]
    async with db.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        report = Report(conn, window=ALL_TIME, now=NOW, settings=KpiSettings())
        async with touching(conn, written=False) as scanned:
            rows = await report.compute(wanted)
    assert any(r.value.n for found in rows.values() for r in found) or basis == "dead_letters"
    assert scanned <= READS[basis], scanned - READS[basis]
