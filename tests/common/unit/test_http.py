"""The shared HTTP conventions, in process (no server): the bearer token dependency, plain
routes and the request metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import SecretStr

from salesops_common.http import ApiError, PlainRoute, create_app, token_guard
from salesops_common.observability import ServiceMetrics

TOKEN = "s3cret-token"


def _app(metrics: ServiceMetrics) -> Any:
    guard = token_guard(SecretStr(TOKEN))
    router = APIRouter(prefix="/v1", dependencies=[Depends(guard)])

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/things")
    async def documented() -> Response:
        return Response(b"documented", status_code=201)

    async def served(request: Request) -> Response:
        await guard(request)
        if request.headers.get("x-fail"):
            raise ApiError(409, "refused by the plain route")
        return Response(b"plain", status_code=201)

    return create_app(
        title="t",
        metrics=metrics,
        lifespan=None,
        routers=[router],
        checks={},
        plain_routes=[PlainRoute("/v1/things", served, methods=["POST"])],
    )


@pytest.fixture
async def client() -> Any:
    metrics = ServiceMetrics("unit")
    transport = httpx.ASGITransport(app=_app(metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        c.metrics = metrics  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER   {TOKEN}  ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer{TOKEN}", False),
        ("Bearer \xe9", False),
    ],
)
async def test_the_bearer_token_is_checked_on_every_v1_route(
    client: httpx.AsyncClient, authorization: str | None, accepted: bool
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization.encode("latin-1")}
    for resp in (
        await client.get("/v1/things/a", headers=headers),
        await client.post("/v1/things", headers=headers),
    ):
        if accepted:
            assert resp.status_code in (200, 201), resp.text
        else:
            assert resp.status_code == 401, resp.text
            assert resp.headers["www-authenticate"] == "Bearer"
            assert resp.json()["error"]["code"] == "unauthenticated"


async def test_a_plain_route_is_served_before_the_documented_one(
    client: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = await client.post("/v1/things", headers=auth)
    assert resp.content == b"plain"
    # Its errors get the services' error envelope.
    refused = await client.post("/v1/things", headers={**auth, "x-fail": "1"})
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "conflict",
        "message": "refused by the plain route",
        "details": None,
    }
    # Other methods on its path still reach FastAPI's routing (405, not 404).
    assert (await client.put("/v1/things", headers=auth)).status_code == 405


async def test_the_schema_documents_the_routes_and_the_bearer_scheme(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer"}
    }
    assert spec["paths"]["/v1/things"]["post"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/v1/things/{thing_id}"]["get"]["security"] == [{"HTTPBearer": []}]


async def test_requests_are_counted_by_template_with_a_request_id(
    client: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sent = await client.get("/v1/things/a", headers={**auth, "X-Request-ID": "r" * 80})
    assert sent.headers["x-request-id"] == "r" * 64
    minted = [(await client.get(f"/v1/things/{i}", headers=auth)).headers for i in range(2)]
    assert len({m["x-request-id"] for m in minted}) == 2
    await client.post("/v1/things", headers=auth)
    await client.post("/v1/things", headers={})
    metrics: ServiceMetrics = client.metrics  # type: ignore[attr-defined]

    def count(method: str, route: str, status: str) -> float | None:
        return metrics.registry.get_sample_value(
            "salesops_unit_http_requests_total",
            {"method": method, "route": route, "status": status},
        )

    assert count("GET", "/v1/things/{thing_id}", "200") == 3
    assert count("POST", "/v1/things", "201") == 1
    assert count("POST", "/v1/things", "401") == 1
    timed = metrics.registry.get_sample_value(
        "salesops_unit_http_request_duration_seconds_count",
        {"method": "POST", "route": "/v1/things"},
    )
    assert timed == 2
