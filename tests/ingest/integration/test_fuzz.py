"""Fuzz every operation of ingest's OpenAPI with schemathesis: no 5xx, and every JSON 4xx is
the services' error envelope ``{"error": {"code", "message", ...}}``.

One ingest per module runs with its real lifespan (migrations, relay, consumers, workers) on
the session's PostgreSQL and broker, in an event loop of its own (an anyio blocking portal):
the Hypothesis-driven tests are synchronous, so they reach the app through a ``requests``
adapter that hands each prepared request, byte for byte, to an httpx client on that loop.
Schemathesis serializes the cases and checks the answers exactly as against a server. An
exception escaping the app is answered 500, as a real server would (and logged with its
traceback), so ``not_a_server_error`` reports it with a curl line to reproduce it.

Two passes over every operation (the coverage, examples and fuzzing phases; positive and
negative data):

* with credentials: the API token wherever the spec declares the bearer scheme (schemathesis
  leaves it out of the cases that test a missing ``Authorization``), and the CRM webhooks' own
  credentials (a HubSpot v3 signature over the exact bytes sent, Pipedrive HTTP Basic), so
  fuzzed bodies get past authentication into the parsers and the store;
* without credentials: an operation that declares the bearer scheme must never answer 2xx.

Built-in checks that are off, and why:

* ``status_code_conformance``: FastAPI documents only 2xx and its 422; the shared error
  conventions (400, 401, 404, 405, 409, 413, 415, 429) are deliberately not repeated in every
  operation. ``json_error_shape`` checks all those answers instead.
* ``response_schema_conformance``: the documented 422 body is FastAPI's default
  ``HTTPValidationError`` (``{"detail": [...]}``); the services answer with the error
  envelope by design (``salesops_common.http``), which ``json_error_shape`` checks.
* ``positive_data_acceptance``: the schemas are deliberately looser than the domain rules (an
  event's ``data`` is any object, a webhook body "an array of objects"), so schema-valid
  requests are refused with 4xx by design (unknown fields, unsigned or misshapen deliveries).
* ``allow_header_conformance``: Starlette's 405 lists the methods of the first route whose
  path matches (``/v1/syncs`` has GET and POST as two routes, ``/v1/dead-letters/retry`` is
  also matched by ``/v1/dead-letters/{letter_id}``), not every method of the path.
* ``ignored_auth``, ``use_after_free``, ``ensure_resource_availability``: they re-send
  requests through schemathesis's own network transport (not this in-process session) or need
  stateful links; the credential-less pass checks that authentication is enforced instead.

And per operation: ``content_type_conformance`` on ``GET /metrics`` (Prometheus text,
documented as JSON by FastAPI's default response class), ``unsupported_method`` on
``POST /v1/dead-letters/retry`` (``GET /v1/dead-letters/retry`` *is* ``GET
/v1/dead-letters/{letter_id}`` with a non-integer id: 422 is right), and
``negative_data_rejection`` on ``POST /v1/replays`` (pydantic's lax mode reads a number as a
Unix time for ``since``/``until``).

``SALESOPS_FUZZ_SEED`` and ``SALESOPS_FUZZ_EXAMPLES`` explore further than CI does.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import requests.adapters
import schemathesis
import urllib3
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_ingest.bootstrap import create_app
from tests.ingest.integration.crm_support import ingest_settings, sign_v3
from tests.support import AUTH, TOKEN, Isolation, running

pytestmark = [
    pytest.mark.integration,
    # Raised from inside schemathesis's own strategies, not from this module.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

BASE_URL = "http://svc"
SF_ORG = "00D5g000004XYZ1EAA"
PD_USER, PD_PASSWORD = "pipedrive-hook", "pipedrive-secret"
# Every webhook reachable: HubSpot's client secret (from ingest_settings), a Salesforce org
# allowlist and Pipedrive credentials. No CRM API token, so nothing calls out to a CRM.
CONFIGURED: dict[str, Any] = {
    "salesforce_org_ids": SF_ORG,
    "pipedrive_user": PD_USER,
    "pipedrive_password": PD_PASSWORD,
}
SEED = int(os.environ.get("SALESOPS_FUZZ_SEED", "20261101"))
AUTHORIZED_EXAMPLES = int(os.environ.get("SALESOPS_FUZZ_EXAMPLES", "40"))
ANONYMOUS_EXAMPLES = 10


def _openapi() -> dict[str, Any]:
    """The OpenAPI of an ingest built like the one under test (building it connects nothing)."""
    placeholder = Isolation(database_url="postgresql://unused@127.0.0.1:9/unused", bootstrap="")
    return create_app(ingest_settings(placeholder, **CONFIGURED)).openapi()


SPEC = _openapi()
SECURED = {
    (method.upper(), path)
    for path, operations in SPEC["paths"].items()
    for method, operation in operations.items()
    if operation.get("security")
}
# Schemathesis's default answers to schema-violating data, plus 413: how ingest refuses a batch
# over its documented maxItems. (5xx are not_a_server_error's to report.)
REJECTIONS = "400 401 403 404 405 406 409 413 415 422 428 429 5xx".split()
DISABLED_CHECKS = (
    "status_code_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)


def _schema(*, credentials: bool) -> Any:
    config: dict[str, Any] = {
        "seed": SEED,
        "generation": {"mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            **{name: {"enabled": False} for name in DISABLED_CHECKS},
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
        },
        "operations": [
            {
                "include-name": "GET /metrics",
                "checks": {"content_type_conformance": {"enabled": False}},
            },
            {
                "include-name": "POST /v1/dead-letters/retry",
                "checks": {"unsupported_method": {"enabled": False}},
            },
            {
                "include-name": "POST /v1/replays",
                "checks": {"negative_data_rejection": {"enabled": False}},
            },
        ],
    }
    if credentials:
        config["auth"] = {"openapi": {"HTTPBearer": {"bearer": TOKEN}}}
    return schemathesis.openapi.from_dict(SPEC, config=schemathesis.Config.from_dict(config))


authorized = _schema(credentials=True)
anonymous = _schema(credentials=False)


def _fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# ------------------------------------------------------------------------------------------
# The app under test, on its own event loop, and requests sessions that reach it


@dataclass
class LiveIngest:
    portal: BlockingPortal
    client: httpx.AsyncClient

    def session(self, *, credentials: bool) -> requests.Session:
        session = requests.Session()
        session.mount("http://", _PortalAdapter(self, credentials=credentials))
        return session


@pytest.fixture(scope="module")
def live(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Iterator[LiveIngest]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    app = create_app(ingest_settings(iso, **CONFIGURED))
    # An exception escaping the app becomes the 500 a server would send, not a client error.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(running(app)) as ops,
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        ) as client,
    ):
        served = portal.call(ops.get, "/openapi.json")
        assert served.json() == SPEC, "the fuzzed spec is not the one the app serves"
        yield LiveIngest(portal, client)


class _PortalAdapter(requests.adapters.HTTPAdapter):
    """Sends a prepared request (its exact bytes) through the in-process httpx client."""

    def __init__(self, live: LiveIngest, *, credentials: bool) -> None:
        super().__init__()
        self.live = live
        self.credentials = credentials

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        method = request.method or "GET"
        url = str(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = dict(request.headers)
        if self.credentials:
            headers.update(_webhook_credentials(url, body))
        send = partial(self.live.client.request, method, url, content=body, headers=headers)
        answer: httpx.Response = self.live.portal.call(send)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=list(answer.headers.multi_items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
            decode_content=False,
        )
        return self.build_response(request, raw)


def _webhook_credentials(url: str, body: bytes) -> dict[str, str]:
    """The CRM webhooks' own proof (the API token comes from schemathesis's auth config)."""
    path = urlsplit(url).path
    if path == "/webhooks/hubspot":
        signed = sign_v3(body, url=url)
        return {k: v for k, v in signed.items() if k.lower().startswith("x-hubspot-")}
    if path == "/webhooks/pipedrive":
        basic = base64.b64encode(f"{PD_USER}:{PD_PASSWORD}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    return {}


# ------------------------------------------------------------------------------------------
# Checks


def json_error_shape(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """A 4xx answered as JSON is the services' error envelope."""
    if not 400 <= response.status_code < 500:
        return
    content_type = next(
        (v[0] for k, v in response.headers.items() if k.lower() == "content-type" and v), ""
    )
    if not content_type.startswith("application/json"):
        return
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} without an error object: {body!r}"
    assert isinstance(error.get("code"), str), f"no error code: {body!r}"
    assert error["code"], f"empty error code: {body!r}"
    assert isinstance(error.get("message"), str), f"no error message: {body!r}"


def _call_and_validate(
    case: schemathesis.Case,
    live: LiveIngest,
    *,
    credentials: bool,
    headers: dict[str, str] | None = None,
) -> schemathesis.Response:
    return case.call_and_validate(
        base_url=BASE_URL,
        session=live.session(credentials=credentials),
        headers=headers,
        additional_checks=[json_error_shape],
    )


# ------------------------------------------------------------------------------------------
# The two passes


@authorized.parametrize()
@_fuzz_settings(AUTHORIZED_EXAMPLES)
def test_fuzz_with_credentials(case: schemathesis.Case, live: LiveIngest) -> None:
    _call_and_validate(case, live, credentials=True)


@anonymous.parametrize()
@_fuzz_settings(ANONYMOUS_EXAMPLES)
def test_fuzz_without_credentials(case: schemathesis.Case, live: LiveIngest) -> None:
    response = _call_and_validate(case, live, credentials=False)
    if (case.method.upper(), case.path) in SECURED:
        assert not 200 <= response.status_code < 300, (
            f"{case.method} {case.path} answered {response.status_code} without credentials"
        )


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
    method: str, path: str, parts: dict[str, Any], live: LiveIngest
) -> None:
    parts = dict(parts)
    if "body" in parts:
        parts.setdefault("media_type", "application/json" if path != "/v1/imports" else "text/csv")
    case = authorized[path][method].Case(**parts)
    # Schemathesis's auth config covers generated cases only: this one carries the token.
    response = _call_and_validate(case, live, credentials=True, headers=AUTH)
    assert response.status_code != 401, response.text
