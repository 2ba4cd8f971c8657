"""Ingest's app and its database, for the integration tests that need nothing else (a module
with other needs — fake CRMs, the write-back consumer — defines its own ``ingest``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from salesops_common.settings import database_dsn
from salesops_ingest.bootstrap import create_app
from salesops_ingest.config import IngestSettings
from tests.support import Isolation, running


@pytest.fixture
async def ingest(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Without its writeback consumer: these tests put nothing on routing's topic."""
    settings = IngestSettings(database=iso.database("ingest"), **iso.settings_kwargs())
    async with running(create_app(settings), consumers=False) as client:
        yield client


@pytest.fixture
async def db(iso: Isolation, ingest: httpx.AsyncClient) -> AsyncIterator[asyncpg.Connection]:
    """A connection to ingest's database, once the app has migrated it."""
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        yield conn
    finally:
        await conn.close()
