"""A database projected before the read models existed (schema 0002) gets them from migration
0003 exactly as the consumer would have kept them: the same history, projected, then taken
back to 0002 and upgraded again, gives every KPI, grouping and window the same rows."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.db import create_engine, migrate
from salesops_common.settings import database_dsn
from salesops_metrics.bootstrap import MIGRATIONS, create_app
from salesops_metrics.domain.kpis import KPIS
from salesops_metrics.service_layer.reports import KpiSettings, Report
from tests.metrics.edges import edge_events
from tests.metrics.integration.test_engines import WINDOWS
from tests.metrics.scenario import Scenario
from tests.metrics.support import NOW, applied, fixed_clock, metrics_settings, publish_all
from tests.support import Isolation, downgrade_to, running

pytestmark = pytest.mark.integration
SCENARIO = Scenario(seed=13)


@pytest.fixture(scope="module")
async def projected(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> str:
    """The history applied by the service, which is then stopped; yields its database."""
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    events = [*SCENARIO.events, *edge_events(SCENARIO.events)]
    async with running(create_app(metrics_settings(iso), clock=fixed_clock(NOW))) as client:
        await publish_all(iso, events)
        await applied(client, len(events), within=90)
    return database_dsn(postgres.url, iso.database("metrics"))


async def every_row(dsn: str) -> dict[tuple[str, str | None, str], Any]:
    conn = await asyncpg.connect(dsn)
    out = {}
    try:
        for name, window in WINDOWS.items():
            report = Report(conn, window=window, now=NOW, settings=KpiSettings())
            wanted = [(kpi, by) for kpi in KPIS.values() for by in (None, *kpi.group_by)]
            for (kpi, by), rows in (await report.compute(wanted)).items():
                out[(kpi, by, name)] = rows
    finally:
        await conn.close()
    return out


async def test_upgrading_from_0002_fills_the_read_models_as_the_consumer_does(
    projected: str,
) -> None:
    kept = await every_row(projected)
    assert any(r.value.n for rows in kept.values() for r in rows)
    engine = create_engine(projected)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(downgrade_to, MIGRATIONS, "0002")
            await conn.commit()
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    upgraded = await every_row(projected)
    differing = [key for key in kept if upgraded[key] != kept[key]]
    assert differing == [], differing[:3]
