"""The same history gives the same numbers however it arrives: in order to one service; out
of order, partly twice, to two copies of another; and again after a rebuild from the log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.settings import database_dsn
from salesops_metrics.bootstrap import create_app
from salesops_metrics.service_layer.reports import FAMILIES
from tests.metrics.scenario import QUOTAS, RATES, Scenario, snapshot
from tests.metrics.support import ADMIN, NOW, fixed_clock, metrics_settings, publish_all
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration
SCENARIO = Scenario()


async def loaded(client: httpx.AsyncClient, *, events: int, dead: int) -> None:
    """Wait until every valid event is applied and every poison one dead-lettered."""

    async def done() -> bool:
        listing = (await client.get("/v1/kpis", headers=AUTH)).json()
        kpis = {k["kpi"]: k for k in listing["kpis"]}
        applied = sum(listing["events_by_type"].values())
        return applied >= events and kpis["dead_letters"]["value"] >= dead

    await eventually(done, within=90, interval=0.3)


async def configure(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/quotas", json=QUOTAS, headers=ADMIN)).status_code == 200
    assert (await client.put("/v1/exchange-rates", json=RATES, headers=ADMIN)).status_code == 200


@pytest.fixture(scope="module")
async def in_order(module_iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    iso = module_iso
    async with running(create_app(metrics_settings(iso), clock=fixed_clock(NOW))) as client:
        await configure(client)
        await publish_all(iso, [*SCENARIO.events, *SCENARIO.poison])
        await loaded(client, events=len(SCENARIO.events), dead=len(SCENARIO.poison))
        yield client


@pytest.fixture(scope="module")
def shuffled_iso(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Isolation:
    return Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)


@pytest.fixture(scope="module")
async def shuffled(shuffled_iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Two copies in one consumer group, fed the history shuffled with duplicates."""
    iso = shuffled_iso
    settings = metrics_settings(iso)
    clock = fixed_clock(NOW)
    async with (
        running(create_app(settings, clock=clock)) as one,
        running(create_app(settings, clock=clock)) as two,
    ):
        await configure(one)
        await publish_all(iso, SCENARIO.shuffled())
        await loaded(two, events=len(SCENARIO.events), dead=len(SCENARIO.poison))
        yield two


@pytest.fixture(scope="module")
async def expected(in_order: httpx.AsyncClient) -> dict[str, Any]:
    return await snapshot(in_order)


async def test_every_kpi_has_data_in_the_scenario(expected: dict[str, Any]) -> None:
    """So that equal snapshots below mean something: every KPI has observations."""
    empty = [
        key
        for key, values in expected.items()
        if key.endswith("/None/False") and not any(v["n"] > 0 for v in values)
    ]
    assert empty == []
    # A tenth of the leads were never touched: the 90th percentile is unbounded.
    assert expected["lead_response_p90/None/False"][0]["value"] is None
    assert expected["lead_response_median/None/False"][0]["value"] > 0
    assert expected["events_by_type"]["lead.created"] == 24
    assert expected["dead_letters/None/False"][0]["value"] == 1


async def test_out_of_order_and_duplicate_delivery_gives_the_same_numbers(
    expected: dict[str, Any], shuffled: httpx.AsyncClient
) -> None:
    found = await snapshot(shuffled)
    assert found.keys() == expected.keys()
    differing = [key for key in expected if found[key] != expected[key]]
    assert differing == [], {key: (expected[key], found[key]) for key in differing[:3]}


async def test_the_log_holds_each_event_once_though_copies_were_delivered_twice(
    expected: dict[str, Any], shuffled: httpx.AsyncClient, shuffled_iso: Isolation
) -> None:
    """The event log has no unique index of its own (migration 0004): the inbox, claimed in
    the batch's transaction, is what keeps a redelivered event out of it, across batches,
    within one batch and across the two copies. A rebuild of the shuffled copy's log gives
    the numbers of the one fed in order."""
    delivered = SCENARIO.shuffled()
    assert len(delivered) > len({e.id for e in delivered})  # copies were delivered twice
    dsn = database_dsn(shuffled_iso.database_url, shuffled_iso.database("metrics"))
    conn = await asyncpg.connect(dsn)
    try:
        logged = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_ids FROM event_log"
        )
        unique = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'event_log' "
            "AND indexdef LIKE '%UNIQUE%' AND indexdef LIKE '%(event_id)%'"
        )
    finally:
        await conn.close()
    assert unique == 0
    assert (logged["n"], logged["distinct_ids"]) == (len(SCENARIO.events),) * 2
    resp = await shuffled.post("/v1/rebuild", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == len(SCENARIO.events)
    rebuilt = await snapshot(shuffled)
    differing = [key for key in expected if rebuilt[key] != expected[key]]
    assert differing == [], {key: (expected[key], rebuilt[key]) for key in differing[:3]}


async def test_a_rebuild_from_the_log_gives_the_same_numbers(
    expected: dict[str, Any], in_order: httpx.AsyncClient
) -> None:
    scrape_before = _kpi_lines((await in_order.get("/metrics")).text)
    refused = await in_order.post("/v1/rebuild", headers=AUTH)
    assert refused.status_code == 401
    resp = await in_order.post("/v1/rebuild", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == len(SCENARIO.events)
    rebuilt = await snapshot(in_order)
    differing = [key for key in expected if rebuilt[key] != expected[key]]
    assert differing == [], {key: (expected[key], rebuilt[key]) for key in differing[:3]}
    assert _kpi_lines((await in_order.get("/metrics")).text) == scrape_before


async def test_a_rebuild_while_a_kpi_read_is_under_way_neither_deadlocks_nor_waits_for_it(
    expected: dict[str, Any], in_order: httpx.AsyncClient, module_iso: Isolation
) -> None:
    """A KPI read is one repeatable-read transaction over many tables (GET /v1/kpis reads
    the projections, then event_counts; a snapshot reads event_counts, then the rest). A
    rebuild that emptied the projections with TRUNCATE took an exclusive lock on each table
    in turn: holding event_counts, it waited for the read's hold on another table, and the
    read, going on to event_counts, waited for the rebuild: PostgreSQL killed one of them
    ("deadlock detected", a 500 from POST /v1/rebuild). The rebuild must not lock readers
    out: they see the numbers from before it until it commits."""
    dsn = database_dsn(module_iso.database_url, module_iso.database("metrics"))
    reader, watcher = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            before = await reader.fetchval("SELECT count(*) FROM forecasts")
            rebuilding = asyncio.ensure_future(in_order.post("/v1/rebuild", headers=ADMIN))

            async def rebuilt_or_waiting() -> bool:
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return rebuilding.done() or waiting > 0

            await eventually(rebuilt_or_waiting, within=60)
            counts = await reader.fetch("SELECT type, count FROM event_counts")
            assert await reader.fetchval("SELECT count(*) FROM forecasts") == before
        resp = await rebuilding
    finally:
        await reader.close()
        await watcher.close()
    assert resp.status_code == 200, resp.text
    assert {r["type"]: r["count"] for r in counts} == expected["events_by_type"]
    rebuilt = await snapshot(in_order)
    assert [key for key in expected if rebuilt[key] != expected[key]] == []


async def test_the_snapshots_count_the_families_they_read(in_order: httpx.AsyncClient) -> None:
    """``salesops_metrics_kpi_family_reads_total{family}``: one series per family from the
    start; a family read for a snapshot counts, one kept from the snapshot before does not."""

    def reads(scrape: str) -> dict[str, float]:
        return {
            line.partition('family="')[2].partition('"')[0]: float(line.rpartition(" ")[2])
            for line in scrape.splitlines()
            if line.startswith("salesops_metrics_kpi_family_reads_total{")
        }

    first = reads((await in_order.get("/metrics")).text)
    assert set(first) == set(FAMILIES)
    assert first["deal_closed"] >= 1
    assert first["lead_created"] >= 1
    await configure(in_order)  # the same quotas and rates again: nothing changes
    again = reads((await in_order.get("/metrics")).text)
    assert again == first


def _kpi_lines(scrape: str) -> list[str]:
    """The KPI series of a scrape (not the plumbing, which moves with every request)."""
    plumbing = (
        "_http_",
        "_consumer_",
        "_outbox_",
        "_pipeline_",
        "_dlq_",
        "_created ",
        "_snapshot_",
        "_family_reads_",
        "_kpi_requests_",
        "_kpi_computations_",
    )
    return sorted(
        line
        for line in scrape.splitlines()
        if line.startswith("salesops_metrics_") and not any(p in line for p in plumbing)
    )
