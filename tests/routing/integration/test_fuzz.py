"""Fuzz every operation of routing's OpenAPI with schemathesis (``tests.fuzzing``: no 5xx,
answers match their documented schema, every JSON 4xx is the error envelope, no secured
operation answers 2xx without the token). Routing runs with its consumers: a fuzzed ruleset,
territory or rep change is published and consumed like a real one.

``negative_data_rejection`` is off on ``POST /v1/routing/simulate`` and ``/replay``: pydantic's
lax mode reads a number as a Unix time for their date-times (``at``, ``since``, ``until``), as
in ingest's ``POST /v1/replays``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_routing.bootstrap import create_app
from tests.fuzzing import FUZZ_MARKS, LiveService, fuzz_tests, live_service, placeholder
from tests.routing.integration.conftest import routing_settings
from tests.support import Isolation

pytestmark = FUZZ_MARKS

SPEC: dict[str, Any] = create_app(routing_settings(placeholder())).openapi()
authorized, test_fuzz_with_credentials, test_fuzz_without_credentials = fuzz_tests(
    SPEC,
    authorized_examples=8,
    operations=[
        {
            "include-name": f"POST /v1/routing/{name}",
            "checks": {"negative_data_rejection": {"enabled": False}},
        }
        for name in ("simulate", "replay")
    ],
)


@pytest.fixture(scope="module")
def live(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Iterator[LiveService]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    with live_service(create_app(routing_settings(iso)), SPEC) as service:
        yield service
