"""Fuzz every operation of ingest's OpenAPI with schemathesis (``tests.fuzzing``: no 5xx,
answers match their documented schema, every JSON 4xx is the services' error envelope, no
secured operation answers 2xx without the token).

Ingest's own additions: the CRM webhooks' credentials (a HubSpot v3 signature over the exact
bytes sent, Pipedrive HTTP Basic) so fuzzed bodies get past authentication into the parsers and
the store, and per operation: ``unsupported_method`` on ``POST /v1/dead-letters/retry``
(``GET /v1/dead-letters/retry`` *is* ``GET /v1/dead-letters/{letter_id}`` with a non-integer
id: 422 is right), and ``negative_data_rejection`` on ``POST /v1/replays`` (pydantic's lax
mode reads a number as a Unix time for ``since``/``until``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_ingest.bootstrap import create_app
from tests.fuzzing import (
    FUZZ_MARKS,
    LiveService,
    call_and_validate,
    fuzz_tests,
    live_service,
    placeholder,
)
from tests.ingest.integration.crm_support import ingest_settings, sign_v3
from tests.support import AUTH, Isolation

pytestmark = FUZZ_MARKS

SF_ORG = "00D5g000004XYZ1EAA"
PD_USER, PD_PASSWORD = "pipedrive-hook", "pipedrive-secret"
# Every webhook reachable: HubSpot's client secret (from ingest_settings), a Salesforce org
# allowlist and Pipedrive credentials. No CRM API token, so nothing calls out to a CRM.
CONFIGURED: dict[str, Any] = {
    "salesforce_org_ids": SF_ORG,
    "pipedrive_user": PD_USER,
    "pipedrive_password": PD_PASSWORD,
}


def _openapi() -> dict[str, Any]:
    """The OpenAPI of an ingest built like the one under test (building it connects nothing)."""
    return create_app(ingest_settings(placeholder(), **CONFIGURED)).openapi()


SPEC = _openapi()
OPERATIONS = [
    {
        "include-name": "POST /v1/dead-letters/retry",
        "checks": {"unsupported_method": {"enabled": False}},
    },
    {
        "include-name": "POST /v1/replays",
        "checks": {"negative_data_rejection": {"enabled": False}},
    },
]
authorized, test_fuzz_with_credentials, test_fuzz_without_credentials = fuzz_tests(
    SPEC, authorized_examples=40, anonymous_examples=10, operations=OPERATIONS
)


def _webhook_credentials(method: str, url: str, body: bytes) -> dict[str, str]:
    """The CRM webhooks' own proof (the API token comes from schemathesis's auth config)."""
    path = urlsplit(url).path
    if path == "/webhooks/hubspot":
        signed = sign_v3(body, url=url)
        return {k: v for k, v in signed.items() if k.lower().startswith("x-hubspot-")}
    if path == "/webhooks/pipedrive":
        basic = base64.b64encode(f"{PD_USER}:{PD_PASSWORD}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    return {}


@pytest.fixture(scope="module")
def live(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Iterator[LiveService]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    app = create_app(ingest_settings(iso, **CONFIGURED))
    with live_service(app, SPEC, credentials=_webhook_credentials) as service:
        yield service


# ------------------------------------------------------------------------------------------
# The 5xx the fuzzing found, as fixed cases (each fails until its bug is fixed)

_LEAD = {
    "type": "lead.created",
    "occurred_at": "2026-11-01T10:00:00Z",
    "source_event_id": "fuzz-1",
    "data": {"source_id": "L1"},
}
_BIG = 2**63  # one past PostgreSQL's bigint
FOUND: list[Any] = [
    pytest.param("POST", "/v1/events", {"body": {"type": []}}, id="events-type-not-a-string"),
    pytest.param(
        "POST",
        "/v1/events",
        {"body": {**_LEAD, "source_event_id": "\x00"}},
        id="events-nul-in-source_event_id",
    ),
    pytest.param(
        "POST",
        "/v1/events",
        {"body": {**_LEAD, "data": {"source_id": "L1", "email": "a\x00@b.example"}}},
        id="events-nul-in-data",
    ),
    pytest.param(
        "GET",
        "/v1/entities",
        {"query": {"source": "api", "source_id": "\x00"}},
        id="entities-nul-in-source_id",
    ),
    pytest.param(
        "POST",
        "/v1/imports",
        {"query": {"kind": "lead"}, "body": "source_id\nL\x00\n", "media_type": "text/csv"},
        id="imports-nul-in-a-cell",
    ),
    pytest.param(
        "POST",
        "/v1/imports",
        {"query": {"kind": "lead", "tenant": "\x00"}, "body": "source_id\nL1\n"},
        id="imports-nul-in-tenant",
    ),
    pytest.param(
        "GET", "/v1/dead-letters", {"query": {"after_id": _BIG}}, id="dead-letters-after_id-int64"
    ),
    pytest.param(
        "GET",
        "/v1/dead-letters/{letter_id}",
        {"path_parameters": {"letter_id": _BIG}},
        id="dead-letter-id-int64",
    ),
    pytest.param(
        "POST",
        "/v1/dead-letters/{letter_id}/retry",
        {"path_parameters": {"letter_id": _BIG}},
        id="dead-letter-retry-id-int64",
    ),
    pytest.param(
        "POST",
        "/v1/replays",
        {"body": {"since": "0001-01-01T00:00:00+00:01"}},
        id="replays-since-before-year-1-utc",
    ),
]


@pytest.mark.parametrize(("method", "path", "parts"), FOUND)
def test_requests_that_once_were_answered_500(
    method: str, path: str, parts: dict[str, Any], live: LiveService
) -> None:
    parts = dict(parts)
    if "body" in parts:
        parts.setdefault("media_type", "application/json" if path != "/v1/imports" else "text/csv")
    case = authorized[path][method].Case(**parts)
    # Schemathesis's auth config covers generated cases only: this one carries the token.
    response = call_and_validate(case, live, credentials=True, headers=AUTH)
    assert response.status_code != 401, response.text
