"""Composition root of ingest: real adapters by default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from fastapi import FastAPI

from salesops_common.events import ROUTING_TOPIC
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_ingest.adapters import state as repo
from salesops_ingest.adapters.deliveries import DeliveryStore, prune_archive
from salesops_ingest.config import IngestSettings
from salesops_ingest.connectors import hubspot, pipedrive
from salesops_ingest.domain.mapping import load_mappings
from salesops_ingest.domain.records import CrmApi
from salesops_ingest.entrypoints import admin, api, consumer, imports, webhooks
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.crm_sync import CrmWorkers
from salesops_ingest.service_layer.processor import Mappings, Processor

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def build_apis(settings: IngestSettings, mappings: Mappings) -> dict[str, CrmApi]:
    """A client per CRM whose API credentials are configured."""
    from salesops_ingest.connectors import hubspot as hs
    from salesops_ingest.connectors import pipedrive as pd
    from salesops_ingest.connectors import salesforce as sf

    apis: dict[str, CrmApi] = {}
    retry = settings.crm_retry_base_seconds
    if settings.hubspot_access_token:
        apis["hubspot"] = hs.HubSpotApi(
            settings.hubspot_access_token.get_secret_value(),
            base_url=settings.hubspot_api_base,
            retry_base=retry,
        )
    if settings.salesforce_api_base and settings.salesforce_access_token:
        sf_mapping = mappings.by_source.get("salesforce")
        apis["salesforce"] = sf.SalesforceApi(
            settings.salesforce_api_base,
            settings.salesforce_access_token.get_secret_value(),
            fields=sf.load_query_fields(Path(sf_mapping.path)) if sf_mapping else None,
            backoff_s=retry,
        )
    if settings.pipedrive_api_token:
        apis["pipedrive"] = pd.PipedriveApi(
            settings.pipedrive_api_base,
            settings.pipedrive_api_token.get_secret_value(),
            backoff_s=retry,
        )
    return apis


def webhook_auth(settings: IngestSettings) -> webhooks.WebhookAuth:
    secret = settings.hubspot_client_secret
    return webhooks.WebhookAuth(
        hubspot=(
            hubspot.HubSpotAuth(
                hubspot.parse_secrets(secret.get_secret_value()), settings.public_base_url
            )
            if secret
            else None
        ),
        pipedrive=(
            pipedrive.PipedriveAuth(
                settings.pipedrive_user, settings.pipedrive_password.get_secret_value()
            )
            if settings.pipedrive_user and settings.pipedrive_password
            else None
        ),
        salesforce_orgs=tuple(
            o.strip() for o in settings.salesforce_org_ids.split(",") if o.strip()
        ),
    )


def _tenants(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def create_app(
    settings: IngestSettings | None = None, *, apis: Mapping[str, CrmApi] | None = None
) -> FastAPI:
    settings = settings or IngestSettings()
    runtime = ServiceRuntime(
        service="ingest",
        settings=settings,
        database=settings.database,
        migrations=MIGRATIONS,
        # The owner written back to the CRM soon after routing decides: the dev broker answers
        # a waiting fetch only when it times out (aiokafka's default wait is 500 ms).
        consumer_options={"fetch_max_wait_ms": 50},
    )
    mappings = Mappings(load_mappings(settings.mappings_dir))
    crm_apis = dict(apis) if apis is not None else build_apis(settings, mappings)
    deliveries = DeliveryStore(runtime.dsn)
    processor = Processor(
        dsn=runtime.dsn, topics=runtime.topics, mappings=mappings, parsers=webhooks.parsers()
    )
    ctx = IngestContext(
        settings=settings,
        uow=runtime.uow,
        topics=runtime.topics,
        metrics=runtime.metrics,
        require_token=token_guard(settings.api_token),
        deliveries=deliveries,
        processor=processor,
        apis=crm_apis,
    )
    processor._on_result = ctx.observe
    processor._on_dead = ctx.count_dead
    workers = CrmWorkers(
        dsn=runtime.dsn,
        processor=processor,
        apis=crm_apis,
        retry_base=settings.crm_retry_base_seconds,
        observe_writeback=lambda source, result: ctx.writebacks.labels(source, result).inc(),
        tenants={
            "hubspot": _tenants(settings.hubspot_portal_ids),
            "salesforce": [o[:15] for o in _tenants(settings.salesforce_org_ids)],
            "pipedrive": _tenants(settings.pipedrive_company_ids),
        },
    )

    runtime.add_consumer(
        name="writeback", subscribe=[ROUTING_TOPIC], handlers=consumer.build_handlers(ctx)
    )
    runtime.on_start(deliveries.start)
    runtime.on_start(ctx.events.start)
    runtime.add_worker("processor", processor.run)
    if crm_apis:
        runtime.add_worker("fetcher", workers.run_fetches)
        runtime.add_worker("writeback", workers.run_writebacks)
        if settings.sync_interval_minutes > 0:
            runtime.add_worker(
                "sync", lambda: _every(settings.sync_interval_minutes * 60, runtime.dsn, workers)
            )
    runtime.add_worker("housekeeping", lambda: _housekeeping(runtime.dsn, settings))
    runtime.on_stop(ctx.events.stop)  # before the pool its writers use is closed
    runtime.on_stop(deliveries.stop)
    for client in crm_apis.values():
        close = getattr(client, "aclose", None)
        if close is not None:
            runtime.on_stop(close)

    async def refresh_gauges() -> None:
        async with ctx.raw() as conn:
            rows = await conn.fetch("SELECT source, metric, count FROM quality_counts")
            ctx.pending.set(
                await conn.fetchval("SELECT count(*) FROM deliveries WHERE processed_at IS NULL")
            )
        for source, rates in admin.quality_rates(rows).items():
            for rate in ("duplicate_rate", "invalid_email_rate", "missing_field_rate"):
                ctx.quality.labels(source, rate).set(rates[rate])

    return runtime.create_app(
        title="salesops ingest",
        description="Receives CRM webhooks (HubSpot, Salesforce, Pipedrive), REST events and "
        "CSV imports; authenticates, normalizes and deduplicates them; publishes canonical "
        "events to salesops.crm.v1; writes routing's owners back into the CRM.",
        routers=[
            api.build_router(ctx),
            imports.build_router(ctx),
            admin.build_router(ctx, workers),
            webhooks.build_router(ctx, webhook_auth(settings)),
        ],
        before_scrape=[refresh_gauges],
        plain_routes=[api.events_route(ctx)],
    )


async def _every(seconds: float, dsn: str, workers: CrmWorkers) -> None:
    """The scheduled reconciliation pull."""
    while True:
        await asyncio.sleep(seconds)
        conn = await asyncpg.connect(dsn)
        try:
            totals = await workers.sync(conn)
            if totals:
                log.info("reconciliation pull read %s", totals)
        finally:
            await conn.close()


async def _housekeeping(dsn: str, settings: IngestSettings) -> None:
    """Every ``housekeeping_seconds``: prune delivery identities older than the dedupe window
    and raw deliveries older than the archive's retention."""
    while True:
        conn = await asyncpg.connect(dsn)
        try:
            now = datetime.now(UTC)
            cutoff = now - timedelta(hours=settings.dedupe_window_hours)
            pruned = await repo.prune_seen(conn, older_than=cutoff)
            if pruned:
                log.info("pruned %d delivery identities older than %s", pruned, cutoff)
            if settings.archive_retention_days > 0:
                cutoff = now - timedelta(days=settings.archive_retention_days)
                pruned = await prune_archive(conn, older_than=cutoff)
                if pruned:
                    log.info("pruned %d raw deliveries received before %s", pruned, cutoff)
        finally:
            await conn.close()
        await asyncio.sleep(settings.housekeeping_seconds)
