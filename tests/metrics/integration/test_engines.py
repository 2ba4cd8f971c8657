"""The KPIs the service answers, worked out and grouped in PostgreSQL (service_layer/reports.py),
are the KPIs the domain defines, computed in Python row by row (service_layer/reference.py):
on a scenario that gives every KPI a value, with the edge cases of tests/metrics/edges.py on
top, every KPI, grouping and window gives the same rows, to the last bit of every float."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.settings import database_dsn
from salesops_metrics.bootstrap import create_app
from salesops_metrics.domain.kpis import KPIS
from salesops_metrics.domain.periods import ALL_TIME, Window, resolve_window
from salesops_metrics.service_layer import reference
from salesops_metrics.service_layer.reports import KpiSettings, Report
from tests.metrics.edges import edge_events
from tests.metrics.scenario import EXPLICIT, QUOTAS, RATES, START, Scenario
from tests.metrics.support import ADMIN, NOW, fixed_clock, metrics_settings, publish_all
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration
SCENARIO = Scenario(seed=11)
EVENTS = [*SCENARIO.events, *edge_events(SCENARIO.events)]
SETTINGS = KpiSettings()
WINDOWS = {
    "all": ALL_TIME,
    "explicit": Window(*EXPLICIT),
    "from": Window(datetime(2026, 6, 1, tzinfo=UTC), None),
    "to": Window(None, datetime(2026, 5, 15, tzinfo=UTC)),
    "first days": Window(START, datetime(2026, 4, 5, tzinfo=UTC)),
    "quarter of now": resolve_window("quarter", start=None, end=None, now=NOW, start_month=1),
    "empty": Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC)),
}


@pytest.fixture(scope="module")
async def loaded(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> AsyncIterator[str]:
    """The scenario applied by the service; yields its database."""
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    async with running(create_app(metrics_settings(iso), clock=fixed_clock(NOW))) as client:
        assert (await client.put("/v1/quotas", json=QUOTAS, headers=ADMIN)).status_code == 200
        rates = await client.put("/v1/exchange-rates", json=RATES, headers=ADMIN)
        assert rates.status_code == 200
        await publish_all(iso, EVENTS)

        async def applied() -> bool:
            listing = (await client.get("/v1/kpis", headers=AUTH)).json()
            return sum(listing["events_by_type"].values()) >= len(EVENTS)

        await eventually(applied, within=90, interval=0.3)
        yield database_dsn(postgres.url, iso.database("metrics"))


@pytest.mark.parametrize("window", WINDOWS)
async def test_every_kpi_and_grouping_equals_the_python_definition(
    loaded: str, window: str
) -> None:
    conn = await asyncpg.connect(loaded)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            facts = reference.Facts(conn, window=WINDOWS[window], now=NOW, settings=SETTINGS)
            report = Report(conn, window=WINDOWS[window], now=NOW, settings=SETTINGS)
            wanted = [(kpi, by) for kpi in KPIS.values() for by in (None, *kpi.group_by)]
            served = await report.compute(wanted)
            differing = {}
            for kpi, by in wanted:
                defined = await reference.compute(kpi, facts, by)
                if served[(kpi.name, by)] != defined:
                    differing[(kpi.name, by)] = (defined, served[(kpi.name, by)])
    finally:
        await conn.close()
    assert not differing, list(differing.items())[:2]


async def test_every_kpi_has_observations_in_some_window(loaded: str) -> None:
    """So that the equality above means something: only dead letters (the scenario publishes
    no poison here) are empty everywhere."""
    conn = await asyncpg.connect(loaded)
    observed: set[str] = set()
    try:
        for window in WINDOWS.values():
            report = Report(conn, window=window, now=NOW, settings=SETTINGS)
            served = await report.compute([(kpi, None) for kpi in KPIS.values()])
            observed |= {name for (name, _), rows in served.items() if any(r.value.n for r in rows)}
    finally:
        await conn.close()
    assert set(KPIS) - observed == {"dead_letters"}


@pytest.mark.parametrize("window", ["all", "explicit", "empty"])
async def test_each_kpi_asked_alone_equals_its_rows_among_every_kpi(
    loaded: str, window: str
) -> None:
    """A request for one KPI and grouping computes only what it needs (the aggregates of its
    measure, the lookups of its grouping): the same rows as its family computed whole, every
    KPI by every grouping at once (what the test above holds to the Python definition)."""
    conn = await asyncpg.connect(loaded)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            whole = Report(conn, window=WINDOWS[window], now=NOW, settings=SETTINGS)
            wanted = [(kpi, by) for kpi in KPIS.values() for by in (None, *kpi.group_by)]
            served = await whole.compute(wanted)
            differing = {}
            for kpi, by in wanted:
                alone = Report(conn, window=WINDOWS[window], now=NOW, settings=SETTINGS)
                found = (await alone.compute([(kpi, by)]))[(kpi.name, by)]
                if found != served[(kpi.name, by)]:
                    differing[(kpi.name, by)] = (served[(kpi.name, by)], found)
    finally:
        await conn.close()
    assert not differing, list(differing.items())[:2]
