"""Shared pieces of the connector tests: signed HubSpot deliveries and an ingest wired to
local stand-ins of the CRMs' APIs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson

from salesops_common.envelope import Envelope
from salesops_common.settings import database_dsn
from salesops_ingest.bootstrap import create_app
from salesops_ingest.config import IngestSettings
from tests.support import Isolation, eventually, read_topic, running

SECRET = "hubspot-client-secret"
PORTAL = 62515
APP = 1160452
HOOK = "http://svc/webhooks/hubspot"
_event_ids = itertools.count(1_000_000)


def sign_v3(
    body: bytes, *, secret: str = SECRET, url: str = HOOK, ts: int | None = None
) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time() * 1000))
    message = b"POST" + url.encode() + body + stamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def hs_event(
    subscription: str,
    object_id: int | str,
    *,
    prop: str | None = None,
    value: Any = None,
    occurred_at: int | None = None,
    event_id: int | None = None,
    attempt: int = 0,
    change_source: str = "CRM_UI",
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": event_id if event_id is not None else next(_event_ids),
        "subscriptionId": 4242,
        "portalId": PORTAL,
        "appId": APP,
        "occurredAt": occurred_at or int(time.time() * 1000),
        "subscriptionType": subscription,
        "attemptNumber": attempt,
        "objectId": int(object_id),
        "changeSource": change_source,
    }
    if prop is not None:
        event["propertyName"] = prop
        event["propertyValue"] = value
    return event


async def post_hubspot(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    body = orjson.dumps(events)
    return await client.post("/webhooks/hubspot", content=body, headers=sign_v3(body))


def ingest_settings(iso: Isolation, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "database": iso.database("ingest"),
        "hubspot_client_secret": SECRET,
        "crm_retry_base_seconds": 0.01,
        "sync_interval_minutes": 0,
        **iso.settings_kwargs(),
    }
    values.update(overrides)
    return IngestSettings(**values)


@asynccontextmanager
async def ingest_app(
    iso: Isolation, *, consumers: bool = True, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """Ingest with its real lifespan; ``consumers=False`` leaves out its writeback consumer,
    for tests that put nothing on routing's topic (see ``running``)."""
    app = create_app(ingest_settings(iso, **overrides))
    async with running(app, consumers=consumers) as client:
        yield client


async def ingest_db(iso: Isolation) -> asyncpg.Connection:
    return await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))


async def rows(iso: Isolation, sql: str, *args: Any) -> list[Any]:
    conn = await ingest_db(iso)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def count(iso: Isolation, sql: str, *args: Any) -> int:
    return int((await rows(iso, sql, *args))[0][0])


async def crm_events(
    iso: Isolation, *, until: Any, within: float = 60.0, settle: bool = False
) -> list[Envelope]:
    topic = iso.topic("salesops.crm.v1")
    return await read_topic(iso.bootstrap, topic, until=until, within=within, settle=settle)


async def all_sent(iso: Isolation) -> bool:
    """Whether ingest's relay has put every event it committed on the topic."""
    return await count(iso, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def settle(iso: Isolation) -> None:
    """Before asserting that something was *not* published: wait until ingest's outbox has
    nothing left to send, so that anything wrongly published is on the topic (and a read with
    ``settle=True``, to the end of every partition, sees it)."""
    await eventually(lambda: all_sent(iso))


def of_type(events: list[Envelope], type_name: str) -> list[Envelope]:
    return [e for e in events if e.type == type_name]
