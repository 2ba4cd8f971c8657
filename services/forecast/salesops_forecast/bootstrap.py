"""Composition root of forecast: real adapters by default."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from salesops_common.events import CRM_TOPIC
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_forecast.config import ForecastSettings
from salesops_forecast.entrypoints.api import build_router
from salesops_forecast.entrypoints.consumer import HANDLERS
from salesops_forecast.service_layer.context import ForecastContext

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ForecastSettings | None = None) -> FastAPI:
    settings = settings or ForecastSettings()
    runtime = ServiceRuntime(
        service="forecast", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    runtime.add_consumer(name="crm", subscribe=[CRM_TOPIC], handlers=HANDLERS)
    ctx = ForecastContext(
        settings=settings,
        uow=runtime.uow,
        topics=runtime.topics,
        metrics=runtime.metrics,
        require_token=token_guard(settings.api_token),
    )
    return runtime.create_app(
        title="salesops forecast",
        description="Keeps a pipeline snapshot from salesops.crm.v1, forecasts bookings per "
        "scope and fiscal period, and publishes forecast.published to salesops.forecast.v1.",
        routers=[build_router(ctx)],
    )
