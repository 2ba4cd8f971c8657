"""Scheduled forecast runs: at every wall-clock multiple of
``SALESOPS_FORECAST_RUN_INTERVAL_SECONDS`` (0: never), one forecast process runs."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from salesops_forecast.domain.probabilities import NoClosedDeals
from salesops_forecast.service_layer import forecasting
from salesops_forecast.service_layer.context import ForecastContext

log = logging.getLogger(__name__)


async def tick(ctx: ForecastContext) -> forecasting.ForecastRun | None:
    try:
        async with ctx.uow() as session:
            run = await forecasting.run_if_due(
                session,
                now=datetime.now(UTC),
                interval_seconds=ctx.settings.run_interval_seconds,
                **ctx.run_options(),
            )
    except NoClosedDeals:
        log.info("scheduled forecast skipped: no deal has been won or lost yet")
        return None
    if run is not None:
        ctx.observe_run(run)
        log.info("scheduled forecast run %s stored", run.run_id)
    return run


async def run_on_schedule(ctx: ForecastContext) -> None:
    interval = ctx.settings.run_interval_seconds
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval - time.time() % interval)
        await tick(ctx)
