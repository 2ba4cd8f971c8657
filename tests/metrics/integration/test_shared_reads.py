"""Identical KPI requests share one read, and reads are bounded (service_layer/shared.py),
through the service's API on the real PostgreSQL.

A read is held in the middle by a lock: ``reps`` locked ``ACCESS EXCLUSIVE`` by another
transaction. A read takes its snapshot with its first statement (the exchange rates), then
reads the reps and waits there; what is committed while it waits (lead assignments, which
leave ``reps`` alone) is not in its answer: a request that arrives then must not be answered
by it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.envelope import Envelope
from salesops_common.settings import database_dsn
from salesops_metrics.bootstrap import create_app
from salesops_metrics.service_layer.shared import SharedReads
from salesops_metrics.testing import assigned
from tests.metrics.integration.test_incremental import write
from tests.metrics.support import NOW, fixed_clock, metrics_settings
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration
READS = 2


@dataclass
class Service:
    client: httpx.AsyncClient
    shared: SharedReads
    dsn: str


@pytest.fixture(scope="module")
async def service(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> AsyncIterator[Service]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    # /metrics' snapshot task reads once at the start, not again during the tests: the only
    # reads the lock holds are the requests'
    settings = metrics_settings(iso, kpi_reads=READS, refresh_interval_ms=3_600_000)
    app = create_app(settings, clock=fixed_clock(NOW))
    async with running(app, consumers=False) as client:
        yield Service(
            client, app.state.kpi_reads, database_dsn(postgres.url, iso.database("metrics"))
        )


def leads(year: int, count: int) -> list[Envelope]:
    at = datetime(year, 3, 1, 12, tzinfo=UTC)
    return [assigned(at, lead_id=uuid.uuid4(), rep_id=uuid.uuid4()) for _ in range(count)]


async def commit(dsn: str, events: Sequence[Envelope]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await write(conn, events)
    finally:
        await conn.close()


async def assigned_in(client: httpx.AsyncClient, year: int) -> int:
    params = {"kpi": "leads_assigned", "from": f"{year}-01-01", "to": f"{year + 1}-01-01"}
    resp = await client.get("/v1/kpis", params=params, headers=AUTH)
    assert resp.status_code == 200, resp.text
    [row] = resp.json()["values"]
    value: int = row["value"]
    return value


async def held_reads(conn: asyncpg.Connection) -> int:
    """Statements waiting for the lock on reps: reads held in the middle."""
    found: int = await conn.fetchval(
        """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE c.relname = 'reps' AND NOT l.granted
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    )
    return found


class Held:
    """Reads that reach the lead statements wait until ``release``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __aenter__(self) -> Held:
        self.conn = await asyncpg.connect(self.dsn)
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute("LOCK TABLE reps IN ACCESS EXCLUSIVE MODE")
        self.held = True
        return self

    async def waiting(self, count: int) -> None:
        async def enough() -> bool:
            return await held_reads(self.conn) >= count

        await eventually(enough, within=30, interval=0.05)

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.tx.rollback()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
        await self.conn.close()


async def arrived(shared: SharedReads, count: int) -> None:
    async def enough() -> bool:
        return shared.requests["report"] >= count

    await eventually(enough, within=30, interval=0.02)


async def test_requests_arriving_during_a_read_share_the_next_one_which_sees_what_came_before(
    service: Service,
) -> None:
    year, before, later, piled = 2031, 3, 2, 20
    await commit(service.dsn, leads(year, before))
    assert await assigned_in(service.client, year) == before
    started, asked = service.shared.started["report"], service.shared.requests["report"]

    async with Held(service.dsn) as held:
        first = asyncio.create_task(assigned_in(service.client, year))
        await held.waiting(1)  # its snapshot is taken: it started
        await commit(service.dsn, leads(year, later))
        rest = [asyncio.create_task(assigned_in(service.client, year)) for _ in range(piled)]
        await arrived(service.shared, asked + 1 + piled)
        assert service.shared.started["report"] == started + 1  # the others wait for the next
        await held.release()
        answers = await asyncio.gather(*rest)

    # the read under way answers what it saw; everyone who came while it ran sees the leads
    # committed before they came, from one more read
    assert await first == before
    assert answers == [before + later] * piled
    assert service.shared.started["report"] == started + 2


async def test_no_more_reads_run_at_once_than_the_setting_and_the_rest_follow(
    service: Service,
) -> None:
    years = range(2040, 2046)
    await commit(service.dsn, [e for y in years for e in leads(y, y - 2039)])
    started, asked = service.shared.started["report"], service.shared.requests["report"]

    async with Held(service.dsn) as held:
        tasks = [asyncio.create_task(assigned_in(service.client, y)) for y in years]
        await arrived(service.shared, asked + len(years))
        await held.waiting(READS)
        await asyncio.sleep(0.3)  # room for a read past the bound to start, were there one
        assert service.shared.started["report"] == started + READS
        assert await held_reads(held.conn) == READS
        await held.release()
        answers = await asyncio.gather(*tasks)

    assert answers == [y - 2039 for y in years]
    assert service.shared.started["report"] == started + len(years)
