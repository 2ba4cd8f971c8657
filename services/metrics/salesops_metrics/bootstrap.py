"""Composition root of metrics: real adapters by default."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from salesops_common.events import CRM_TOPIC, FORECAST_TOPIC, ROUTING_TOPIC
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_metrics.adapters.prometheus import KpiCollector
from salesops_metrics.config import MetricsSettings
from salesops_metrics.domain.kpis import Snapshot
from salesops_metrics.entrypoints.api import build_router
from salesops_metrics.entrypoints.consumer import handlers
from salesops_metrics.service_layer.kpis import current_kpis

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    runtime = ServiceRuntime(
        service="metrics", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    runtime.add_consumer(
        name="all", subscribe=[CRM_TOPIC, ROUTING_TOPIC, FORECAST_TOPIC], handlers=handlers()
    )

    async def load() -> Snapshot:
        return await current_kpis(runtime.uow)

    collector = KpiCollector(load)
    runtime.metrics.registry.register(collector)
    return runtime.create_app(
        title="salesops metrics",
        description="KPIs kept current from every event on every topic, read over REST "
        "and scraped by Prometheus; all state is in PostgreSQL, so copies agree.",
        routers=[build_router(load=load, require_token=token_guard(settings.api_token))],
        before_scrape=[collector.refresh],
    )
