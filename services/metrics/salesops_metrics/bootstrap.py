"""Composition root of metrics: real adapters by default."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from salesops_common.db import read_snapshots
from salesops_common.envelope import utcnow
from salesops_common.events import ALL_TOPICS, dlq_topic
from salesops_common.http import token_guard
from salesops_common.observability import LATENCY_BUCKETS
from salesops_common.runtime import ServiceRuntime
from salesops_metrics.adapters.prometheus import Renderer, groupings
from salesops_metrics.config import MetricsSettings
from salesops_metrics.domain.kpis import KPIS, GroupRow
from salesops_metrics.domain.periods import Window, resolve_window
from salesops_metrics.entrypoints.admin_api import build_admin_router
from salesops_metrics.entrypoints.api import KpiQuery, build_router
from salesops_metrics.entrypoints.consumer import dead_letter_handlers, handlers
from salesops_metrics.service_layer.kpis import Exposition, Kpis, Listing
from salesops_metrics.service_layer.reports import FAMILIES, KpiSettings
from salesops_metrics.service_layer.shared import SharedReads
from salesops_metrics.service_layer.snapshots import LatestExposition


class SharedReadsCollector(Collector):
    """``GET /v1/kpis``'s requests and the KPI reads computed for them, by kind (report: one
    KPI; listing): identical requests share a read (service_layer/shared.py)."""

    def __init__(self, shared: SharedReads) -> None:
        self._shared = shared

    def collect(self) -> Iterator[Metric]:
        for name, counts, text in (
            ("requests", self._shared.requests, "GET /v1/kpis requests that needed a KPI read"),
            ("computations", self._shared.started, "KPI reads computed for those requests"),
        ):
            family = CounterMetricFamily(f"salesops_metrics_kpi_{name}", text, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], counts[kind])
            yield family


KINDS = ("report", "listing")  # bounded: the reads the API shares
MIGRATIONS = Path(__file__).parent / "migrations"
CONSUMER_BATCH = 1_000
Clock = Callable[[], datetime]


async def _freeze_garbage() -> None:
    """What the process holds once started lives as long as it does: out of the collector's
    sight, a snapshot's thousands of short-lived objects no longer make it walk everything."""
    gc.collect()
    gc.freeze()


def create_app(settings: MetricsSettings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    settings = settings or MetricsSettings()
    runtime = ServiceRuntime(
        service="metrics",
        settings=settings,
        database=settings.database,
        migrations=MIGRATIONS,
        # A record reaches a waiting consumer when its fetch times out on the dev broker:
        # aiokafka's 500 ms default would be most of the time a KPI takes to show an event.
        consumer_options={"fetch_max_wait_ms": 50},
    )
    # A batch's statements are a fixed cost: when the consumer is behind, batches of up to
    # 1,000 records (the runner's default: 500) catch up with less CPU an event (the write
    # path's: a fifth less than in batches of 300, docs/benchmarks.md); when it keeps up,
    # batches are as small as what arrived.
    runtime.add_consumer(
        name="all", subscribe=list(ALL_TOPICS), handlers=handlers(), max_records=CONSUMER_BATCH
    )
    runtime.add_consumer(
        name="dead_letters",
        subscribe=[dlq_topic(t) for t in ALL_TOPICS],
        handlers=dead_letter_handlers(),
    )
    kpis = Kpis(
        lambda lanes: read_snapshots(runtime.engine, lanes),
        settings=KpiSettings(
            currency=settings.currency,
            fiscal_start_month=settings.fiscal_year_start_month,
            default_sla_minutes=settings.response_sla_minutes,
        ),
        clock=clock,
        reads=settings.kpi_reads,
    )

    def window_of(spec: str | None, start: datetime | None, end: datetime | None) -> Window:
        return resolve_window(
            spec, start=start, end=end, now=clock(), start_month=settings.fiscal_year_start_month
        )

    async def report(query: KpiQuery) -> tuple[Window, list[GroupRow]]:
        window_of(query.window, query.start, query.end)  # a bad one is refused at once
        return await kpis.shared_report(
            KPIS[query.kpi],
            window=lambda: window_of(query.window, query.start, query.end),
            window_key=(query.window, query.start, query.end),
            group_by=query.group_by,
        )

    async def listing() -> Listing:
        return await kpis.listing()

    grouping = groupings(rep_labels=settings.rep_labels)

    runtime.metrics.registry.register(SharedReadsCollector(kpis.shared))

    family_reads = Counter(
        "salesops_metrics_kpi_family_reads",
        "Reads of a family of KPIs for /metrics snapshots (a family none of whose tables "
        "changed, or paced and not due, is kept rather than read)",
        ["family"],
        registry=runtime.metrics.registry,
    )
    for family in FAMILIES:  # bounded: the families the code defines
        family_reads.labels(family)

    async def exposition(previous: Exposition | None, paced: bool) -> Exposition:
        window = window_of(settings.exposition_window, None, None)
        found = await kpis.exposition(
            groupings=grouping, window=window, previous=previous, paced=paced
        )
        for family in found.read:
            family_reads.labels(family).inc()
        return found

    took = Histogram(
        "salesops_metrics_kpi_snapshot_seconds",
        "Time to compute and render the KPIs /metrics shows (a snapshot, taken when anything "
        "changed)",
        buckets=LATENCY_BUCKETS,
        registry=runtime.metrics.registry,
    )
    latest = LatestExposition(
        exposition,
        kpis.version,
        render=Renderer(grouping),
        interval=settings.refresh_interval_ms / 1000,
        staleness=settings.scrape_staleness_ms / 1000,
        observe=took.observe,
    )
    runtime.add_worker("kpi-snapshots", latest.keep_current)
    runtime.on_start(_freeze_garbage)
    require_token = token_guard(settings.api_token)
    require_admin = token_guard(settings.admin_token or settings.api_token)
    app = runtime.create_app(
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
                rebuilt=latest.forget,
            ),
        ],
        exposition=[latest.text],
    )
    app.state.kpi_reads = kpis.shared  # what the requests' reads shared, for tests
    return app
