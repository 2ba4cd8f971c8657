"""The forecast service on the session's PostgreSQL and broker, scheduled runs off (the
tests of scheduled runs start their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from salesops_forecast.bootstrap import create_app
from salesops_forecast.config import ForecastSettings
from tests.support import Isolation, running


@pytest.fixture
async def forecast(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    settings = ForecastSettings(
        database=iso.database("forecast"), run_interval_seconds=0, **iso.settings_kwargs()
    )
    async with running(create_app(settings)) as client:
        yield client
