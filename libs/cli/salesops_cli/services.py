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
