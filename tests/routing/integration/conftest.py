"""A routing service running in-process with its real lifespan, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from salesops_routing.bootstrap import create_app
from salesops_routing.config import RoutingSettings
from tests.support import Isolation, running


def routing_settings(iso: Isolation) -> RoutingSettings:
    return RoutingSettings(database=iso.database("routing"), **iso.settings_kwargs())


@pytest.fixture
async def routing(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(routing_settings(iso))) as client:
        yield client


@pytest.fixture
async def admin(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Routing without its CRM consumer, for tests that use its API only (no CRM events)."""
    async with running(create_app(routing_settings(iso)), consumers=False) as client:
        yield client
