"""Fuzz every operation of metrics' OpenAPI with schemathesis (``tests.fuzzing``: no 5xx,
answers match their documented schema, every JSON 4xx is the error envelope, no secured
operation answers 2xx without the token). No separate admin token here: the API token may
write quotas and exchange rates, so fuzzed writes reach the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_metrics.bootstrap import create_app
from tests.fuzzing import FUZZ_MARKS, LiveService, fuzz_tests, live_service, placeholder
from tests.metrics.support import metrics_settings
from tests.support import Isolation

pytestmark = FUZZ_MARKS

SPEC: dict[str, Any] = create_app(metrics_settings(placeholder(), admin_token=None)).openapi()
authorized, test_fuzz_with_credentials, test_fuzz_without_credentials = fuzz_tests(
    SPEC, authorized_examples=15
)


@pytest.fixture(scope="module")
def live(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Iterator[LiveService]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    with live_service(create_app(metrics_settings(iso, admin_token=None)), SPEC) as service:
        yield service
