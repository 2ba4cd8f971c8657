"""Fuzz every operation of forecast's OpenAPI with schemathesis (``tests.fuzzing``: no 5xx,
answers match their documented schema, every JSON 4xx is the error envelope, no secured
operation answers 2xx without the token). Scheduled runs are off; ``POST /v1/forecasts/run``
runs for real (on an empty history: 409); ``unsupported_method`` is off for it: ``GET
/v1/forecasts/run`` *is* ``GET /v1/forecasts/{forecast_id}`` with an id that is not a UUID, so
422 is right."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_forecast.bootstrap import create_app
from salesops_forecast.config import ForecastSettings
from tests.fuzzing import FUZZ_MARKS, LiveService, fuzz_tests, live_service, placeholder
from tests.support import Isolation

pytestmark = FUZZ_MARKS


def _settings(iso: Isolation) -> ForecastSettings:
    return ForecastSettings(
        database=iso.database("forecast"), run_interval_seconds=0, **iso.settings_kwargs()
    )


SPEC: dict[str, Any] = create_app(_settings(placeholder())).openapi()
authorized, test_fuzz_with_credentials, test_fuzz_without_credentials = fuzz_tests(
    SPEC,
    authorized_examples=15,
    operations=[
        {
            "include-name": "POST /v1/forecasts/run",
            "checks": {"unsupported_method": {"enabled": False}},
        }
    ],
)


@pytest.fixture(scope="module")
def live(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Iterator[LiveService]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    with live_service(create_app(_settings(iso)), SPEC) as service:
        yield service
