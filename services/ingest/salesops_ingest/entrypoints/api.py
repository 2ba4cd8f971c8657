"""Ingest's REST API: ``POST /v1/events``, ``GET /v1/entities`` and
``DELETE /v1/leads/{lead_id}`` (erasure)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from salesops_common.db import driver_connection
from salesops_common.events import Source
from salesops_common.http import ApiError, JsonResponse, PlainRoute, read_body
from salesops_common.outbox import add_to_outbox
from salesops_ingest.adapters import repository
from salesops_ingest.domain.model import ACCEPTED_TYPES, EventError, ValidEvent, validate_events
from salesops_ingest.service_layer.accept import EventResult, apply_events, prepare_events
from salesops_ingest.service_layer.context import IngestContext
from salesops_ingest.service_layer.erasure import erase_lead, erasure_response
from salesops_ingest.service_layer.pipeline import BatchResult

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "source_event_id", "occurred_at", "data"],
    "properties": {
        "type": {"type": "string", "enum": sorted(ACCEPTED_TYPES)},
        "source": {"type": "string", "enum": ["api", "csv", "hubspot", "salesforce", "pipedrive"]},
        "tenant": {"type": "string", "default": "default"},
        "source_event_id": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "data": {
            "type": "object",
            "required": ["source_id"],
            "description": "The entity's canonical fields; references to other records by "
            "their source ids (owner_source_id, account_source_id, lead_source_id, "
            "deal_source_id, rep_source_id, manager_source_id, parent_source_id).",
        },
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "maxItems": 1000},
                    ]
                }
            }
        },
    }
}


def _parse(body: bytes, *, max_events: int) -> list[Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if len(items) > max_events:
        raise ApiError(413, f"{len(items)} events in one request; the limit is {max_events}")
    if not items:
        raise ApiError(422, "no events in the request", details=[])
    return items


def _validate(items: list[Any]) -> list[ValidEvent]:
    result = validate_events(items)
    errors = [r for r in result if isinstance(r, EventError)]
    if errors:
        raise ApiError(
            422,
            f"{len(errors)} invalid field(s); nothing was stored",
            details=[e.as_json() for e in errors[:100]],
        )
    return [r for r in result if isinstance(r, ValidEvent)]


def build_router(ctx: IngestContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(ctx.require_token)])

    @router.post("/events", status_code=202, openapi_extra=_BODY)
    async def post_events(
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
    ) -> Response:
        """Accept one canonical event or an array of up to 1,000. A 202 means every event
        is committed in PostgreSQL with its outbox row. Events go through the same hygiene
        as CRM webhooks: normalized, deduplicated by ``source_event_id`` (status
        ``duplicate``), an update that changes nothing publishes nothing (``unchanged``), a
        new lead matching an existing one is merged into it (``merged``)."""
        # Documents the endpoint; `events_route` serves it (the same code, without FastAPI's
        # per-request dependency resolution).
        return await accept_events(ctx, request, idempotency_key)

    @router.get("/entities")
    async def get_entity(
        source: Annotated[Source, Query()],
        source_id: Annotated[str, Query(min_length=1, max_length=256)],
        tenant: Annotated[str, Query(min_length=1, max_length=128)] = "default",
        kind: Annotated[str | None, Query(pattern="^(lead|account|deal|activity|rep)$")] = None,
    ) -> dict[str, Any]:
        """The canonical id of a CRM record (``kind`` narrows when a source id is reused)."""
        async with ctx.uow() as session:
            found = await repository.find_entities(
                session, source=source, tenant=tenant, source_id=source_id, kind=kind
            )
        if not found:
            raise ApiError(404, "no such record")
        if len(found) > 1:
            kinds = [f["kind"] for f in found]
            raise ApiError(
                409,
                "several kinds of record share that source id; pass kind",
                details={"kinds": kinds},
            )
        entity = found[0]
        entity["id"] = str(entity["id"])
        return entity

    @router.delete("/leads/{lead_id}", status_code=202)
    async def erase(lead_id: Annotated[UUID, Path()]) -> dict[str, Any]:
        """Erase a person: null the lead's personal fields (e-mail, names, phone, company,
        website, postal code) here and, through ``lead.erased``, in every service, keeping the
        lead, its owner, status and every count. ``202`` once ingest's own copy is scrubbed and
        the event is committed to its outbox (``status: erased``); calling it again scrubs
        again and publishes nothing (``status: already_erased``, no ``event_ids``); ``404``
        for a lead ingest does not know (pass the canonical id, as ``GET /v1/entities``
        gives it)."""
        async with ctx.uow() as session:
            conn = await driver_connection(session)
            erasure = await erase_lead(conn, lead_id)
            if erasure is None:
                raise ApiError(404, "no such lead")
            await add_to_outbox(conn, erasure.envelopes, topics=ctx.topics)
        ctx.observe_published(BatchResult(envelopes=erasure.envelopes))
        return erasure_response(erasure)

    return router


IDEMPOTENCY_KEY_MAX = 255
_EVENTS_PATH = "/v1/events"
# pydantic's message for a string over ``max_length``, as FastAPI's validation answers it.
_KEY_TOO_LONG = f"String should have at most {IDEMPOTENCY_KEY_MAX} characters"


def events_route(ctx: IngestContext) -> PlainRoute:
    """``POST /v1/events`` served by Starlette alone (the app's ``plain_routes``): the hot
    path of ingest, one request per event for many clients. It does what the documented
    FastAPI route's dependencies do (the bearer token, the ``Idempotency-Key`` header's
    length, with the same 401 and 422 answers) and then the same work."""
    require_token = ctx.require_token

    async def endpoint(request: Request) -> Response:
        await require_token(request)
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
            raise ApiError(
                422,
                "request is invalid",
                details=[
                    {
                        "loc": ["header", "idempotency-key"],
                        "message": _KEY_TOO_LONG,
                        "type": "string_too_long",
                    }
                ],
            )
        return await accept_events(ctx, request, idempotency_key)

    return PlainRoute(_EVENTS_PATH, endpoint, methods=["POST"], include_in_schema=False)


async def accept_events(
    ctx: IngestContext, request: Request, idempotency_key: str | None
) -> Response:
    """Read, validate and commit the request's events; the 202 answer."""
    body = await read_body(request, limit=ctx.settings.max_batch_bytes)
    events = _validate(_parse(body, max_events=ctx.settings.max_batch_events))
    prepared = prepare_events(ctx.processor, events)
    if not idempotency_key:
        # Committed with the other requests in flight (group commit).
        results = await ctx.events.accept(prepared)
        ctx.observe_outcomes("api", [r.status for r in results])
        return Response(_answer(results), status_code=202, media_type="application/json")
    request_hash = hashlib.sha256(body).hexdigest()
    async with ctx.uow() as session:
        earlier = await repository.lock_idempotency_key(session, idempotency_key)
        if earlier is not None:
            return _replay(earlier, request_hash)
        conn = await driver_connection(session)
        result, (results,) = await apply_events(conn, ctx.processor, [prepared])
        encoded = _answer(results)
        await repository.store_idempotent_response(
            session,
            key=idempotency_key,
            request_hash=request_hash,
            status=202,
            response=encoded,
        )
    ctx.observe_published(result)
    ctx.observe_outcomes("api", [r.status for r in results])
    return Response(encoded, status_code=202, media_type="application/json")


def _answer(results: Sequence[EventResult]) -> bytes:
    statuses = [r.status for r in results]
    return orjson.dumps(
        {
            "accepted": statuses.count("accepted"),
            "duplicates": statuses.count("duplicate"),
            "unchanged": statuses.count("unchanged"),
            "merged": statuses.count("merged"),
            "results": [r.as_json() for r in results],
        }
    )


def _replay(earlier: dict[str, Any], request_hash: str) -> Response:
    if earlier["request_hash"] != request_hash:
        raise ApiError(
            422,
            "Idempotency-Key was already used with a different request",
            code="idempotency_key_reused",
        )
    return JsonResponse(earlier["response"], status_code=earlier["status"])
