"""Composition root of routing: real adapters by default."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from salesops_common.events import CRM_TOPIC
from salesops_common.http import token_guard
from salesops_common.runtime import ServiceRuntime
from salesops_routing.config import RoutingSettings
from salesops_routing.entrypoints.api import build_router
from salesops_routing.entrypoints.consumer import build_handlers
from salesops_routing.service_layer.context import RoutingContext

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(
        service="routing", settings=settings, database=settings.database, migrations=MIGRATIONS
    )
    ctx = RoutingContext(
        settings=settings,
        uow=runtime.uow,
        metrics=runtime.metrics,
        require_token=token_guard(settings.api_token),
    )
    runtime.add_consumer(name="crm", subscribe=[CRM_TOPIC], handlers=build_handlers(ctx))
    return runtime.create_app(
        title="salesops routing",
        description="Keeps reps' routing attributes from salesops.crm.v1, assigns every new "
        "lead by fair rotation with an explanation, and publishes lead.assigned to "
        "salesops.routing.v1.",
        routers=[build_router(ctx)],
    )
