"""The CRM webhooks: authenticate on the raw bytes, check the shape, store, answer.

Each receiver reads the body under the 1 MiB limit, authenticates the way its CRM does
(HubSpot signatures, Salesforce organization allowlist, Pipedrive HTTP Basic, the API token
for forwarded CDC), checks just enough of the shape to refuse a malformed or oversized
delivery, applies the per-source rate limit, and stores the delivery; its 2xx means the
delivery is committed. Mapping and normalization happen after the answer, in the processor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from salesops_common.http import ApiError, read_body
from salesops_ingest.connectors import hubspot, pipedrive, salesforce
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.processor import FORMAT_HEADER

# Headers worth archiving with a delivery (never credentials).
_KEPT = ("content-type", "user-agent", "x-hubspot-request-timestamp", "x-request-id")


class RateLimiter:
    """A token bucket per source: ``rate`` requests per second, bursts of one second's worth
    (at least one request, so that a rate under one per second lets requests through)."""

    def __init__(
        self, limits: dict[str, float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}

    def check(self, source: str) -> None:
        rate = self._limits.get(source, self._limits.get("*", 0.0))
        if rate <= 0:
            return
        now = self._clock()
        burst = max(rate, 1.0)
        bucket = self._buckets.setdefault(source, [burst, now])
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise ApiError(
                429,
                f"{source} deliveries over {rate:g} requests per second",
                code="rate_limited",
                headers={"Retry-After": str(retry)},
            )
        bucket[0] = tokens - 1.0


@dataclass
class WebhookAuth:
    hubspot: hubspot.HubSpotAuth | None
    pipedrive: pipedrive.PipedriveAuth | None
    salesforce_orgs: tuple[str, ...]


def _kept_headers(request: Request, fmt: str) -> dict[str, str]:
    kept = {k: v for k in _KEPT if (v := request.headers.get(k)) is not None}
    kept[FORMAT_HEADER] = fmt
    return kept


def build_router(ctx: IngestContext, auth: WebhookAuth) -> APIRouter:
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    limiter = RateLimiter(ctx.settings.rate_limits())
    limit = ctx.settings.webhook_max_bytes

    async def store(request: Request, source: str, fmt: str, body: bytes, items: int) -> int:
        limiter.check(source)
        delivery_id = await ctx.deliveries.store(source, _kept_headers(request, fmt), body, items)
        ctx.webhook_items.labels(source).inc(items)
        return delivery_id

    def unconfigured(source: str) -> ApiError:
        return ApiError(401, f"{source} webhooks are not configured on this server")

    @router.post(
        "/hubspot",
        status_code=204,
        responses={401: {}, 400: {}, 413: {}, 429: {}},
        openapi_extra=_json_array_body(100),
    )
    async def hubspot_webhook(request: Request) -> Response:
        """HubSpot webhook deliveries: a JSON array of up to 100 events, signed (v1, v2 or
        v3) with the app's client secret. 204 once the delivery is stored."""
        body = await read_body(request, limit=limit)
        if auth.hubspot is None:
            raise unconfigured("HubSpot")
        auth.hubspot.verify(
            request.method,
            str(request.url),
            request.headers,
            body,
            int(time.time() * 1000),
        )
        events = hubspot.check_body(body)
        await store(request, "hubspot", "hubspot", body, len(events))
        return Response(status_code=204)

    @router.post(
        "/salesforce",
        responses={200: {"content": {"text/xml": {}}}, 401: {}, 400: {}, 413: {}, 429: {}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/xml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def salesforce_outbound(request: Request) -> Response:
        """Salesforce Outbound Messages (SOAP, up to 100 notifications) from an allowlisted
        organization; answered with the SOAP Ack only after the delivery is committed."""
        body = await read_body(request, limit=limit)
        if not auth.salesforce_orgs:
            raise unconfigured("Salesforce")
        message = salesforce.parse_outbound(body, auth.salesforce_orgs)
        await store(request, "salesforce", "salesforce-outbound", body, len(message.notifications))
        return Response(salesforce.ACK_RESPONSE, media_type="text/xml")

    @router.post(
        "/salesforce/events",
        status_code=202,
        dependencies=[Depends(ctx.require_token)],
        responses={401: {}, 400: {}, 413: {}, 429: {}},
        openapi_extra=_json_array_body(1000),
    )
    async def salesforce_events(request: Request) -> dict[str, Any]:
        """Change Data Capture and Platform Event messages forwarded as JSON by a
        subscriber (one message or an array); API token required."""
        body = await read_body(request, limit=limit)
        messages = salesforce.check_cdc(body)
        delivery_id = await store(request, "salesforce", "salesforce-cdc", body, len(messages))
        return {"delivery_id": delivery_id, "messages": len(messages)}

    @router.post(
        "/pipedrive",
        responses={401: {}, 400: {}, 413: {}, 429: {}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def pipedrive_webhook(request: Request) -> dict[str, Any]:
        """Pipedrive webhooks v2 (one event per request), HTTP Basic credentials."""
        body = await read_body(request, limit=limit)
        if auth.pipedrive is None:
            raise unconfigured("Pipedrive")
        auth.pipedrive.verify(request.headers)
        pipedrive.check_body(body)
        delivery_id = await store(request, "pipedrive", "pipedrive", body, 1)
        return {"status": "ok", "delivery_id": delivery_id}

    return router


def _json_array_body(max_items: int) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}, "maxItems": max_items}
                }
            },
        }
    }


def parsers() -> dict[str, Callable[[bytes], Any]]:
    """Delivery format -> the connector's parser, used by the processor."""
    return {
        "hubspot": hubspot.records,
        "salesforce-outbound": salesforce.records_from_outbound,
        "salesforce-cdc": salesforce.records_from_cdc,
        "pipedrive": pipedrive.records,
    }
