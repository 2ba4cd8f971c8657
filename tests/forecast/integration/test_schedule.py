"""Scheduled forecast runs: they happen without a request, and with two forecast processes
on one database each tick is run by one of them only."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

import asyncpg
import pytest

from salesops_common.events import Deal
from salesops_common.settings import database_dsn
from salesops_forecast.bootstrap import create_app
from salesops_forecast.config import ForecastSettings
from tests.forecast.integration.test_scoring import FORECAST, crm, deliver
from tests.support import AUTH, Isolation, eventually, read_topic, running

pytestmark = pytest.mark.integration
INTERVAL = 2.0


def _deal(stage: str) -> Deal:
    return Deal(id=uuid.uuid4(), source="api", source_id=stage, stage=stage, amount=Decimal(100))


async def run_ticks(iso: Isolation) -> list[float]:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("forecast")))
    try:
        rows = await conn.fetch("SELECT extract(epoch FROM as_of) AS t FROM forecast_runs")
    finally:
        await conn.close()
    return [float(r["t"]) // INTERVAL for r in rows]


async def test_runs_happen_on_schedule_once_per_tick_across_processes(iso: Isolation) -> None:
    settings = ForecastSettings(
        database=iso.database("forecast"),
        run_interval_seconds=INTERVAL,
        **iso.settings_kwargs(),
    )
    events = [
        crm("deal.won", _deal("Closed Won")),
        crm("deal.lost", _deal("Closed Lost")),
        crm("deal.created", _deal("Proposal")),
    ]
    async with (
        running(create_app(settings)) as first,
        running(create_app(settings), consumers=False) as second,
    ):
        await deliver(first, iso, events)

        async def scheduled_forecasts() -> bool:
            body = (await second.get("/v1/forecasts", headers=AUTH)).json()
            return bool(body["forecasts"])

        await eventually(scheduled_forecasts, within=60)
        await read_topic(
            iso.bootstrap,
            iso.topic(FORECAST),
            until=lambda seen: any(e.type == "deal.scored" for e in seen),
            within=60,
        )

        async def several_ticks() -> bool:
            return len(await run_ticks(iso)) >= 3

        await eventually(several_ticks, within=60)
    ticks = Counter(await run_ticks(iso))
    assert max(ticks.values()) == 1, ticks  # never two runs in one tick
