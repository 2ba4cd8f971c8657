"""Building each service's app from its own settings (the CLI's only view of the services)."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI

from salesops_common.outbox import republish_since
from salesops_common.settings import database_dsn


def _settings(service: str) -> Any:
    module = importlib.import_module(f"salesops_{service}.config")
    cls = getattr(module, f"{service.title()}Settings")
    return cls()


def create_service_app(service: str) -> tuple[FastAPI, str, int]:
    settings = _settings(service)
    bootstrap = importlib.import_module(f"salesops_{service}.bootstrap")
    app: FastAPI = bootstrap.create_app(settings)
    return app, settings.http_host, int(settings.port)


# Factories by import string, for uvicorn's worker processes (each one a full copy).
def ingest_app() -> FastAPI:
    return create_service_app("ingest")[0]


def routing_app() -> FastAPI:
    return create_service_app("routing")[0]


def metrics_app() -> FastAPI:
    return create_service_app("metrics")[0]


def forecast_app() -> FastAPI:
    return create_service_app("forecast")[0]


async def republish(since: datetime, services: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for service in services:
        settings = _settings(service)
        conn = await asyncpg.connect(database_dsn(settings.database_url, settings.database))
        try:
            counts[service] = await republish_since(conn, since)
        finally:
            await conn.close()
    return counts
