"""Redelivery storms end to end: the same signed HubSpot batch delivered 10 times at once,
and changes to contacts arriving before their creation; every service applies each fact
once (the ingest-level dedupe is tested in tests/ingest; this adds the reconciliation
across services)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.faults import CATCH_UP_WITHIN, running_stack
from tests.e2e.reconcile import database, published, reconcile
from tests.ingest.fakes.hubspot_api import FakeHubSpot
from tests.ingest.integration.crm_support import SECRET, hs_event, sign_v3
from tests.support import Isolation, eventually

pytestmark = pytest.mark.e2e

HS_TOKEN = "hs-e2e-token"
CONTACTS = 20


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(token=HS_TOKEN) as fake:
        for i in range(CONTACTS):
            fake.objects[("contact", str(9000 + i))] = {
                "email": f"storm{i}@storm{i}.example",
                "firstname": f"Storm{i}",
                "company": f"Storm {i}",
                "createdate": "2026-11-01T10:00:00.000Z",
                "lastmodifieddate": "2026-11-01T10:00:00.000Z",
            }
        yield fake


async def test_a_batch_delivered_ten_times_at_once_is_applied_once_everywhere(
    iso: Isolation, hubspot: FakeHubSpot, home: Path
) -> None:
    async with running_stack(
        iso,
        home,
        SALESOPS_HUBSPOT_CLIENT_SECRET=SECRET,
        SALESOPS_HUBSPOT_API_BASE=hubspot.base_url,
        SALESOPS_HUBSPOT_ACCESS_TOKEN=HS_TOKEN,
        SALESOPS_INGEST_SYNC_INTERVAL_MINUTES="0",
    ) as stack:
        hook = stack.url("ingest") + "/webhooks/hubspot"
        # The first half created the usual way; the second half's property changes come
        # first and their creations after (events about a lead before the lead).
        creations = [hs_event("contact.creation", 9000 + i) for i in range(CONTACTS)]
        early = [
            hs_event("contact.propertyChange", 9000 + i, prop="firstname", value=f"Storm{i}")
            for i in range(CONTACTS // 2, CONTACTS)
        ]
        async with httpx.AsyncClient(timeout=30) as http:

            async def deliver(events: list[dict[str, object]]) -> int:
                body = orjson.dumps(events)
                resp = await http.post(hook, content=body, headers=sign_v3(body, url=hook))
                return resp.status_code

            first = [*creations[: CONTACTS // 2], *early]
            statuses = await asyncio.gather(*(deliver(first) for _ in range(10)))
            late = creations[CONTACTS // 2 :]
            statuses += await asyncio.gather(*(deliver(late) for _ in range(10)))
        assert {s // 100 for s in statuses} == {2}, statuses
        async with database(iso, "ingest") as conn:
            deliveries = int(await conn.fetchval("SELECT count(*) FROM deliveries"))

            async def processed() -> bool:
                sql = "SELECT count(*) FROM deliveries WHERE processed_at IS NOT NULL"
                return int(await conn.fetchval(sql)) == deliveries

            await eventually(processed, within=CATCH_UP_WITHIN)

        # A contact's creation is published once ingest has fetched the contact from the CRM
        # (its fetch queue), which may be after its delivery was processed.
        async def created() -> int:
            crm = (await published(iso))["salesops.crm.v1"]
            return sorted(crm.values()).count("lead.created")

        await eventually(lambda: _at_least(created(), CONTACTS), within=CATCH_UP_WITHIN)
        await reconcile(iso, stack.urls(), set(), within=CATCH_UP_WITHIN)
        assert await created() == CONTACTS  # once each, however often delivered


async def _at_least(count: Awaitable[int], wanted: int) -> bool:
    return await count >= wanted
