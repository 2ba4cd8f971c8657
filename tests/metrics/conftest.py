"""Metrics tests share one service per module where the state allows: each start costs a
consumer-group join. Tests in such a module keep apart by ids and by their own time ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_metrics.bootstrap import create_app
from tests.metrics.support import NOW, fixed_clock, metrics_settings
from tests.support import Isolation, running


@pytest.fixture(scope="module")
def module_iso(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Isolation:
    return Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)


@pytest.fixture(scope="module")
async def shared_metrics(module_iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(metrics_settings(module_iso), clock=fixed_clock(NOW))
    async with running(app) as client:
        yield client
