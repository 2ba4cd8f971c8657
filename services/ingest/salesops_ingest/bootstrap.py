"""Composition root of ingest: real adapters by default."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_ingest.config import IngestSettings
from salesops_ingest.entrypoints.api import build_router
from salesops_ingest.service_layer.context import IngestContext

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    runtime = ServiceRuntime(
        service="ingest", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    ctx = IngestContext(
        settings=settings,
        uow=runtime.uow,
        topics=runtime.topics,
        metrics=runtime.metrics,
        require_token=token_guard(settings.api_token),
    )
    return runtime.create_app(
        title="salesops ingest",
        description="Authenticates, normalizes and deduplicates CRM events; publishes "
        "canonical events to salesops.crm.v1.",
        routers=[build_router(ctx)],
    )
