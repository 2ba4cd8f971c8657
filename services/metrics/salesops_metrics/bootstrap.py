"""Composition root of metrics: real adapters by default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI

from salesops_common.envelope import utcnow
from salesops_common.events import ALL_TOPICS, dlq_topic
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_metrics.adapters.prometheus import KpiCollector, groupings
from salesops_metrics.config import MetricsSettings
from salesops_metrics.domain.kpis import KPIS, GroupRow
from salesops_metrics.domain.periods import Window, resolve_window
from salesops_metrics.entrypoints.admin_api import build_admin_router
from salesops_metrics.entrypoints.api import KpiQuery, build_router
from salesops_metrics.entrypoints.consumer import dead_letter_handlers, handlers
from salesops_metrics.service_layer import kpis
from salesops_metrics.service_layer.reports import KpiSettings

MIGRATIONS = Path(__file__).parent / "migrations"
Clock = Callable[[], datetime]


def create_app(settings: MetricsSettings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    settings = settings or MetricsSettings()
    runtime = ServiceRuntime(
        service="metrics", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    runtime.add_consumer(name="all", subscribe=list(ALL_TOPICS), handlers=handlers())
    runtime.add_consumer(
        name="dead_letters",
        subscribe=[dlq_topic(t) for t in ALL_TOPICS],
        handlers=dead_letter_handlers(),
    )
    kpi_settings = KpiSettings(
        currency=settings.currency,
        fiscal_start_month=settings.fiscal_year_start_month,
        default_sla_minutes=settings.response_sla_minutes,
    )

    def window_of(spec: str | None, start: datetime | None, end: datetime | None) -> Window:
        return resolve_window(
            spec, start=start, end=end, now=clock(), start_month=settings.fiscal_year_start_month
        )

    async def report(query: KpiQuery) -> tuple[Window, list[GroupRow]]:
        window = window_of(query.window, query.start, query.end)
        rows = await kpis.report(
            runtime.uow,
            KPIS[query.kpi],
            window=window,
            group_by=query.group_by,
            now=clock(),
            settings=kpi_settings,
        )
        return window, rows

    async def listing() -> kpis.Listing:
        return await kpis.listing(runtime.uow, now=clock(), settings=kpi_settings)

    grouping = groupings(rep_labels=settings.rep_labels)

    async def exposition() -> kpis.Exposition:
        return await kpis.exposition(
            runtime.uow,
            groupings=grouping,
            window=window_of(settings.exposition_window, None, None),
            now=clock(),
            settings=kpi_settings,
        )

    collector = KpiCollector(exposition, grouping)
    runtime.metrics.registry.register(collector)
    require_token = token_guard(settings.api_token)
    require_admin = token_guard(settings.admin_token or settings.api_token)
    return runtime.create_app(
        title="salesops metrics",
        description="Sales-ops KPIs kept current from every event on every topic, read over "
        "REST by window and group, and scraped by Prometheus; all state is in PostgreSQL, so "
        "copies agree, and the projections can be rebuilt from the event log.",
        routers=[
            build_router(report=report, listing=listing, require_token=require_token),
            build_admin_router(
                uow=runtime.uow,
                reporting_currency=settings.currency,
                fiscal_start_month=settings.fiscal_year_start_month,
                require_token=require_token,
                require_admin=require_admin,
            ),
        ],
        before_scrape=[collector.refresh],
    )
