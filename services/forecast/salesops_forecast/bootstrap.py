"""Composition root of forecast: real adapters by default."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from salesops_common.events import CRM_TOPIC, ROUTING_TOPIC
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_forecast.config import ForecastSettings
from salesops_forecast.entrypoints.api import build_router
from salesops_forecast.entrypoints.consumer import HANDLERS, ROUTING_HANDLERS
from salesops_forecast.entrypoints.scheduler import run_on_schedule
from salesops_forecast.entrypoints.scores_api import build_scores_router
from salesops_forecast.service_layer.context import ForecastContext

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ForecastSettings | None = None) -> FastAPI:
    settings = settings or ForecastSettings()
    runtime = ServiceRuntime(
        service="forecast", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    # One consumer for both topics: routing's few events need no group of their own.
    runtime.add_consumer(
        name="crm",
        subscribe=[CRM_TOPIC, ROUTING_TOPIC],
        handlers={**HANDLERS, **ROUTING_HANDLERS},
    )
    ctx = ForecastContext(
        settings=settings,
        uow=runtime.uow,
        topics=runtime.topics,
        metrics=runtime.metrics,
        require_token=token_guard(settings.api_token),
    )
    runtime.add_worker("schedule", lambda: run_on_schedule(ctx))
    return runtime.create_app(
        title="salesops forecast",
        description="Keeps a pipeline snapshot from salesops.crm.v1 and salesops.routing.v1, "
        "scores open deals and leads, forecasts bookings per scope and fiscal period, and "
        "publishes forecast.published, deal.scored and lead.scored to salesops.forecast.v1.",
        routers=[build_router(ctx), build_scores_router(ctx)],
    )
