"""HTTP conventions every service shares: JSON errors, bearer auth, body limits,
request metrics by route template, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salesops_common.observability import Children, ServiceMetrics, correlation_id

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    431: "headers_too_large",
    503: "unavailable",
}


class JsonResponse(JSONResponse):
    """JSON rendered by orjson (decimals, datetimes and UUIDs included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers


def error_response(error: ApiError) -> JsonResponse:
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return JsonResponse(body, status_code=error.status, headers=error.headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def _invalid_data(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncpg.DataError | OverflowError):
            return str(seen).splitlines()[0][:200]
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(ApiError(exc.status_code, str(exc.detail), headers=headers))

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        return error_response(ApiError(422, "request is invalid", details=details))

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        invalid = _invalid_data(exc)
        if invalid is not None:
            # The database refused a value the validation let through (a NUL character, a
            # number or date out of range): the transaction rolled back, nothing changed.
            return error_response(ApiError(422, f"a value cannot be stored: {invalid}"))
        log.exception("unhandled error", exc_info=exc)
        return error_response(ApiError(500, "internal error", code="internal"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)


class BearerToken(HTTPBearer):
    """A dependency that refuses any call without ``Authorization: Bearer <token>``: one
    dependant (FastAPI resolves the header itself, no sub-dependency), documented in the
    OpenAPI schema as the ``HTTPBearer`` scheme. The token is compared in constant time."""

    def __init__(self, token: SecretStr) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer")
        self._expected = token.get_secret_value().encode()

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        if not self.accepts(request.headers.get("authorization")):
            raise ApiError(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def accepts(self, authorization: str | None) -> bool:
        """``Bearer <token>`` (scheme in any case, the token trimmed, as HTTPBearer reads it)."""
        if not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        given = given.strip()
        if not given or scheme.lower() != "bearer":
            return False
        # Latin-1 encodes every header value (HTTP headers are bytes) without an error.
        return hmac.compare_digest(given.encode("latin-1"), self._expected)


def token_guard(token: SecretStr) -> BearerToken:
    """A dependency that refuses any call without ``Authorization: Bearer <token>``."""
    return BearerToken(token)


async def read_body(request: Request, *, limit: int) -> bytes:
    """Read the body, refusing with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class RequestMetricsMiddleware:
    """Counts and times requests by route template (never the raw path: ids are unbounded),
    and gives each request its id (``X-Request-ID`` as sent, up to 64 characters, or a new
    one), in the logs' correlation id and the answer's ``X-Request-ID`` header."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # The label sets are bounded by the routes.
        self._counted = Children(metrics.http_requests)
        self._timed = Children(metrics.http_latency)

    @staticmethod
    def _template(scope: Scope) -> str:
        # The router records the matched route in the (shared) scope.
        route = scope.get("route")
        return str(getattr(route, "path", "unmatched"))

    @staticmethod
    def _request_id(scope: Scope) -> str:
        sent = b""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                sent = value  # the last one, if a client sends several
        return sent[:64].decode("latin-1") if sent else uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = correlation_id.set(request_id)
        header = (b"x-request-id", request_id.encode("latin-1"))
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append(header)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method, route = scope["method"], self._template(scope)
            self._counted(method, route, str(status)).inc()
            self._timed(method, route).observe(time.perf_counter() - started)
            correlation_id.reset(token)


class BodyTimeoutMiddleware:
    """Bounds how slowly a client may send a request body (slow-loris): after ``grace``
    seconds, the body must have arrived at ``min_rate`` bytes per second on average or better,
    counted from the start of the request. A client below the rate (or silent) gets ``408``,
    and the server closes the connection (the body was not read to its end). A body that keeps
    the pace is never cut, however large (CSV imports stream without a total limit)."""

    def __init__(self, app: ASGIApp, *, grace: float, min_rate: float) -> None:
        self.app = app
        self.grace = grace
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        complete = False

        async def timed_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            deadline = started + self.grace + received / self.min_rate
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Closing the connection drops the rest of the body (not read to its end).
                raise HTTPException(
                    408,
                    f"request body slower than {self.min_rate:g} bytes/s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024


class HeaderLimitMiddleware:
    """Refuses a request with more than ``MAX_HEADERS`` headers or ``MAX_HEADER_BYTES`` of them
    (431) before any route sees it. uvicorn's httptools parser sets no limit of its own: it
    has buffered them by then, so a reverse proxy's limit is the one that bounds memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers") or []
        if scope["type"] == "http" and (
            len(headers) > MAX_HEADERS
            or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES
        ):
            message = f"over {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them"
            response = error_response(ApiError(431, message, headers={"Connection": "close"}))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class PlainRoute(Route):
    """A Starlette route for ``create_app``'s ``plain_routes``: it records itself in the scope
    as FastAPI's routes do, so that the request metrics name it by its path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


ReadinessCheck = Callable[[], Awaitable[bool]]


def ops_router(
    metrics: ServiceMetrics,
    checks: dict[str, ReadinessCheck],
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
    exposition: Sequence[Callable[[], Awaitable[bytes]]] = (),
) -> APIRouter:
    """``/healthz``, ``/readyz`` and ``/metrics``: open, as the architecture says.
    ``exposition``: text a service renders itself (Prometheus format, whole families),
    served after its registry's."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception:  # noqa: BLE001 - any failure means not ready
                results[name] = False
        ready = all(results.values())
        body = {"status": "ready" if ready else "not_ready", "checks": results}
        return JsonResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        for refresh in before_scrape:
            try:
                await refresh()
            except Exception:  # noqa: BLE001 - a scrape must still answer with what it has
                log.warning("metrics refresh failed", exc_info=True)
        body = generate_latest(metrics.registry)
        for render in exposition:
            try:
                body += await render()
            except Exception:  # noqa: BLE001 - the same
                log.warning("metrics exposition failed", exc_info=True)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every error answer of the services: a code, a message and details.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def document_errors(app: FastAPI) -> None:
    """Document the answers as they are: FastAPI describes its 422 as ``HTTPValidationError``
    (``{"detail": [...]}``), the services answer every error with the error envelope."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_SCHEMA
                schemas.pop("ValidationError", None)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    *,
    title: str,
    metrics: ServiceMetrics,
    lifespan: Any,
    routers: Sequence[APIRouter],
    checks: dict[str, ReadinessCheck],
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
    exposition: Sequence[Callable[[], Awaitable[bytes]]] = (),
    description: str = "",
    body_grace: float = 10.0,
    body_min_rate: float = 1024.0,
    plain_routes: Sequence[PlainRoute] = (),
) -> FastAPI:
    """The service's app; ``body_grace``/``body_min_rate``: see ``BodyTimeoutMiddleware``.

    ``plain_routes``: Starlette routes (``PlainRoute``) matched before every other route,
    for the few hot endpoints whose per-request cost matters (FastAPI's dependency
    resolution and request handling take about 100 µs a request). Such a route checks its
    own authentication and parameters; the FastAPI route of the same path and method (in
    ``routers``) stays, so that the OpenAPI schema documents it, and it should run the
    same code. Errors raised in a plain route are answered by the same handlers
    (``ApiError``, ``HTTPException``, any other exception), and the request metrics name
    it by its path."""
    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # No OpenTelemetry here (Prometheus metrics, JSON logs): without this, FastAPI asks
        # OpenTelemetry's global providers on every request whether they are configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    document_errors(app)
    app.include_router(ops_router(metrics, checks, before_scrape, exposition))
    for router in routers:
        app.include_router(router)
    app.router.routes[0:0] = plain_routes
    app.add_middleware(BodyTimeoutMiddleware, grace=body_grace, min_rate=body_min_rate)
    app.add_middleware(HeaderLimitMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app
