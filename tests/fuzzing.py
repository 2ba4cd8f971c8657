"""Schemathesis over a service's OpenAPI, shared by every service's ``test_fuzz.py``.

One service per test module runs with its real lifespan (migrations, relay, consumers) on the
session's PostgreSQL and broker, in an event loop of its own (an anyio blocking portal): the
Hypothesis-driven tests are synchronous, so they reach the app through a ``requests`` adapter
that hands each prepared request, byte for byte, to an httpx client on that loop. Schemathesis
serializes the cases and checks the answers exactly as against a server. An exception escaping
the app is answered 500, as a real server would (and logged with its traceback), so
``not_a_server_error`` reports it with a curl line to reproduce it.

Two passes over every operation (the coverage, examples and fuzzing phases; positive and
negative data):

* with credentials: the API token wherever the spec declares the bearer scheme (schemathesis
  leaves it out of the cases that test a missing ``Authorization``), plus whatever other proof
  a service's module adds (ingest's CRM webhook signatures), so fuzzed data gets past
  authentication into the parsers and the store;
* without credentials (examples and fuzzing phases only): an operation that declares the
  bearer scheme must never answer 2xx.

Built-in checks that are off, and why:

* ``status_code_conformance``: FastAPI documents only 2xx and its 422; the shared error
  conventions (400, 401, 404, 405, 409, 413, 415, 429) are deliberately not repeated in every
  operation. ``json_error_shape`` checks all those answers instead. (Responses *are* checked
  against their documented schema, ``response_schema_conformance``: the documented 422 is the
  error envelope, see ``salesops_common.http.document_errors``.)
* ``positive_data_acceptance``: the schemas are looser than the domain rules (an event's
  ``data`` is any object, a ruleset's conditions are checked by the domain), so schema-valid
  requests are refused with 4xx by design.
* ``allow_header_conformance``: Starlette's 405 lists the methods of the first route whose
  path matches, not every method of the path.
* ``ignored_auth``, ``use_after_free``, ``ensure_resource_availability``: they re-send
  requests through schemathesis's own network transport (not this in-process session) or need
  stateful links; the credential-less pass checks that authentication is enforced instead.

Every service: ``content_type_conformance`` is off on ``GET /metrics`` (Prometheus text,
documented as JSON by FastAPI's default response class), and ``not_a_server_error`` on
``GET /readyz`` (503 is how it says a check failed: on a loaded machine metrics' KPI snapshot
can fail for a moment, and readiness says so).

``SALESOPS_FUZZ_SEED`` and ``SALESOPS_FUZZ_EXAMPLES`` explore further than CI does.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import requests
import requests.adapters
import schemathesis
import urllib3
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from tests.support import TOKEN, Isolation, running

FUZZ_MARKS = [
    pytest.mark.integration,
    # Raised from inside schemathesis's own strategies, not from the test modules.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

BASE_URL = "http://svc"
SEED = int(os.environ.get("SALESOPS_FUZZ_SEED", "20261101"))
# Examples per operation with credentials (scaled by a module's own default) and without.
EXAMPLES_SCALE = float(os.environ.get("SALESOPS_FUZZ_EXAMPLES", "0") or 0)
ANONYMOUS_EXAMPLES = 5
# Schemathesis's default answers to schema-violating data, plus 413 (a body or batch over a
# documented limit). 5xx are not_a_server_error's to report.
REJECTIONS = "400 401 403 404 405 406 409 413 415 422 428 429 5xx".split()
DISABLED_CHECKS = (
    "status_code_conformance",
    "positive_data_acceptance",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)
OPS_OPERATIONS: list[dict[str, Any]] = [
    {
        "include-name": "GET /metrics",
        "checks": {"content_type_conformance": {"enabled": False}},
    },
    {"include-name": "GET /readyz", "checks": {"not_a_server_error": {"enabled": False}}},
]

# Extra request headers for a request (method, url, body), e.g. a webhook's signature.
Credentials = Callable[[str, str, bytes], dict[str, str]]


def placeholder() -> Isolation:
    """Settings for building an app only to read its OpenAPI (building connects nothing)."""
    return Isolation(database_url="postgresql://unused@127.0.0.1:9/unused", bootstrap="")


def examples(default: int) -> int:
    """Examples per operation with credentials: ``default``, or SALESOPS_FUZZ_EXAMPLES."""
    return int(EXAMPLES_SCALE) if EXAMPLES_SCALE else default


def secured(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """The operations that declare a security scheme."""
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }


def schema(
    spec: dict[str, Any], *, credentials: bool, operations: Sequence[dict[str, Any]] = ()
) -> Any:
    """The schemathesis schema of ``spec``; ``operations``: per-operation config overrides."""
    config: dict[str, Any] = {
        "seed": SEED,
        "generation": {"mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            **{name: {"enabled": False} for name in DISABLED_CHECKS},
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
        },
        "operations": [*OPS_OPERATIONS, *operations],
    }
    if credentials:
        config["auth"] = {"openapi": {"HTTPBearer": {"bearer": TOKEN}}}
    else:
        # Without the token every call stops at authentication: the coverage phase's hundreds
        # of boundary values per operation would test the same 401 again and again.
        config["phases"]["coverage"] = {"enabled": False}
    return schemathesis.openapi.from_dict(spec, config=schemathesis.Config.from_dict(config))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# ------------------------------------------------------------------------------------------
# The app under test, on its own event loop, and requests sessions that reach it


def _no_credentials(method: str, url: str, body: bytes) -> dict[str, str]:
    return {}


@dataclass
class LiveService:
    portal: BlockingPortal
    client: httpx.AsyncClient
    spec: dict[str, Any]
    credentials: Credentials = _no_credentials

    def session(self, *, credentials: bool) -> requests.Session:
        session = requests.Session()
        session.mount("http://", _PortalAdapter(self, credentials=credentials))
        return session


@contextmanager
def live_service(
    app: FastAPI,
    spec: dict[str, Any],
    *,
    consumers: bool = True,
    credentials: Credentials = _no_credentials,
) -> Iterator[LiveService]:
    """Run ``app`` with its real lifespan on an event loop of its own; check that ``spec``
    (what the tests fuzz, built before collection) is the one it serves."""
    # An exception escaping the app becomes the 500 a server would send, not a client error.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(running(app, consumers=consumers)) as ops,
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        ) as client,
    ):
        served = portal.call(ops.get, "/openapi.json")
        assert served.json() == spec, "the fuzzed spec is not the one the app serves"
        yield LiveService(portal, client, spec, credentials)


class _PortalAdapter(requests.adapters.HTTPAdapter):
    """Sends a prepared request (its exact bytes) through the in-process httpx client."""

    def __init__(self, live: LiveService, *, credentials: bool) -> None:
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
            headers.update(self.live.credentials(method, url, body))
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


def call_and_validate(
    case: schemathesis.Case,
    live: LiveService,
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


def check_anonymous(case: schemathesis.Case, live: LiveService) -> None:
    """Without credentials: the pass's checks, and no 2xx from a secured operation."""
    response = call_and_validate(case, live, credentials=False)
    if (case.method.upper(), case.path) in secured(live.spec):
        assert not 200 <= response.status_code < 300, (
            f"{case.method} {case.path} answered {response.status_code} without credentials"
        )


def fuzz_tests(
    spec: dict[str, Any],
    *,
    authorized_examples: int,
    anonymous_examples: int = ANONYMOUS_EXAMPLES,
    operations: Sequence[dict[str, Any]] = (),
) -> tuple[Any, Callable[..., None], Callable[..., None]]:
    """The two passes over ``spec``, as test functions for a module to bind under their own
    names (with a ``live`` fixture giving the ``LiveService``), and the authorized schema (for
    fixed cases)."""
    authorized = schema(spec, credentials=True, operations=operations)
    anonymous = schema(spec, credentials=False, operations=operations)

    @authorized.parametrize()
    @fuzz_settings(examples(authorized_examples))
    def test_fuzz_with_credentials(case: schemathesis.Case, live: LiveService) -> None:
        call_and_validate(case, live, credentials=True)

    @anonymous.parametrize()
    @fuzz_settings(anonymous_examples)
    def test_fuzz_without_credentials(case: schemathesis.Case, live: LiveService) -> None:
        check_anonymous(case, live)

    return authorized, test_fuzz_with_credentials, test_fuzz_without_credentials
