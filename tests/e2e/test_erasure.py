"""Erasure end to end through ``salesops up``: a lead erased by ``DELETE /v1/leads/{id}`` and
one by HubSpot's privacy deletion leave no trace of their personal values in any table of any
service, while every other lead, the assignments and the KPIs stay as they were, a metrics
rebuild included."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import orjson
import pytest

from salesops_cli.infra import remove_tree
from salesops_common.settings import database_dsn
from tests.e2e.conftest import SERVICES, RunningStack, stack_env, start_stack, stop_stack
from tests.e2e.test_backbone_flow import hire_reps
from tests.ingest.fakes.hubspot_api import FakeHubSpot
from tests.ingest.integration.crm_support import PORTAL, SECRET, hs_event, sign_v3
from tests.support import AUTH, Isolation, api_event, eventually, read_topic

pytestmark = pytest.mark.e2e

HS_TOKEN = "hs-erasure-token"
HS_CONTACT = "9001"
ERASED_BY_DELETE = {
    "email": "Zephyrine.Q@QH-Mail.example",
    "first_name": "Zephyrine",
    "last_name": "Quillfeather",
    "phone": "+44 20 7946 0321",
    "company": "Quillfeather Holdings",
    "website": "https://www.qfh.example/zephyrine",
    "postal_code": "QX7 9ZZ",
    "country": "GB",
    "industry": "Software",
}
KEPT = {
    "email": "kasimir@keepwell.example",
    "first_name": "Kasimir",
    "last_name": "Keepwell",
    "company": "Keepwell Trading",
    "country": "GB",
}
# As the CRM's API answers: untrimmed, capitalized, a phone as typed.
HS_PROPERTIES = {
    "email": " Horatia.Vexmoor@HS-Mail.example ",
    "firstname": "HORATIA",
    "lastname": "Vexmoor",
    "company": "Vexmoor Ventures",
    "phone": "(415) 555-0199",
    "country": "United States",
    "createdate": "2026-11-01T10:00:00.000Z",
    "lastmodifieddate": "2026-11-01T10:00:00.000Z",
}
HS_NEW_PHONE = "(415) 555-0177"
# What must be gone: each value in a form it was stored in (raw, normalized, or as a part).
ERASED_NEEDLES = [
    "zephyrine",
    "quillfeather",
    "qx7 9zz",
    "7946 0321",
    "79460321",
    "horatia",
    "vexmoor",
    "555-0199",
    "5550199",
    "555-0177",
]
KEPT_NEEDLES = ["kasimir", "keepwell"]
WATCHED_KPIS = (
    "leads_assigned",
    "lead_to_deal_conversion",
    "duplicate_rate",
    "win_rate",
    "deals_won",
    "technology_adoption",
)


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(token=HS_TOKEN) as fake:
        fake.objects[("contact", HS_CONTACT)] = dict(HS_PROPERTIES)
        yield fake


@pytest.fixture
def hs_stack(iso: Isolation, hubspot: FakeHubSpot) -> Iterator[RunningStack]:
    """The whole stack, with ingest taking HubSpot webhooks and reading the stand-in API."""
    home = Path(tempfile.mkdtemp(prefix="salesops-erasure-"))
    env, urls = stack_env(iso, home)
    env["SALESOPS_HUBSPOT_CLIENT_SECRET"] = SECRET
    env["SALESOPS_HUBSPOT_ACCESS_TOKEN"] = HS_TOKEN
    env["SALESOPS_HUBSPOT_API_BASE"] = hubspot.base_url
    running = start_stack(env, urls, home)
    yield running
    stop_stack(running)
    remove_tree(home)


async def stored_text(iso: Isolation) -> dict[str, list[str]]:
    """Every value of every column of every table of every service's database, lowercased,
    by ``service.table.column``: a scan that no future table escapes."""
    out: dict[str, list[str]] = {}
    for service in SERVICES:
        conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database(service)))
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
            for (table,) in tables:
                for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                    for column, value in row.items():
                        if value is None:
                            continue
                        text = (
                            bytes(value).decode("utf-8", "replace")
                            if isinstance(value, bytes | memoryview)
                            else str(value)
                        )
                        out.setdefault(f"{service}.{table}.{column}", []).append(text.lower())
        finally:
            await conn.close()
    return out


def where_found(stored: dict[str, list[str]], needles: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for place, texts in stored.items():
        for needle in needles:
            if any(needle in text for text in texts):
                found.setdefault(needle, []).append(place)
    return found


async def post_hubspot(http: httpx.AsyncClient, url: str, events: list[dict[str, Any]]) -> None:
    body = orjson.dumps(events)
    hook = url + "/webhooks/hubspot"
    resp = await http.post(hook, content=body, headers=sign_v3(body, url=hook))
    assert resp.status_code == 204, resp.text


async def watched_kpis(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    resp = await http.get(url + "/v1/kpis")
    assert resp.status_code == 200, resp.text
    return {k["kpi"]: k["value"] for k in resp.json()["kpis"] if k["kpi"] in WATCHED_KPIS}


async def assignment(http: httpx.AsyncClient, url: str, lead_id: str) -> dict[str, Any] | None:
    resp = await http.get(f"{url}/v1/assignments/{lead_id}")
    if resp.status_code != 200 or resp.json()["rep_id"] is None:
        return None
    body = resp.json()
    return {k: body[k] for k in ("rep_id", "territory_id", "strategy", "assigned_at")}


async def feed(http: httpx.AsyncClient, urls: dict[str, str]) -> list[str]:
    """Reps; a lead with an activity and a won deal, another lead (REST); a HubSpot contact
    read from the CRM's API, then changed by a webhook. Returns the three lead ids."""
    await hire_reps(http, urls)
    events = [
        api_event("lead.created", "L-erase", ERASED_BY_DELETE),
        api_event("lead.created", "L-keep", KEPT),
        api_event(
            "activity.logged",
            "A1",
            {
                "type": "call",
                "direction": "outbound",
                "lead_source_id": "L-erase",
                "rep_source_id": "R0",
                "occurred_at": "2026-11-02T10:00:00+00:00",
            },
        ),
        api_event(
            "deal.created",
            "D1",
            {
                "amount": "1000",
                "currency": "USD",
                "stage": "Engaging",
                "lead_source_id": "L-erase",
                "owner_source_id": "R0",
            },
        ),
        api_event(
            "deal.won",
            "D1",
            {
                "stage": "Won",
                "amount": "1000",
                "currency": "USD",
                "closed_at": "2026-11-03T10:00:00+00:00",
            },
        ),
    ]
    resp = await http.post(urls["ingest"] + "/v1/events", json=events)
    assert resp.status_code == 202, resp.text
    erase_id, keep_id = (r["entity_id"] for r in resp.json()["results"][:2])
    await post_hubspot(http, urls["ingest"], [hs_event("contact.creation", HS_CONTACT)])

    async def hubspot_lead() -> str | None:
        params = {"source": "hubspot", "source_id": HS_CONTACT, "tenant": str(PORTAL)}
        r = await http.get(urls["ingest"] + "/v1/entities", params=params)
        if r.status_code != 200:
            return None
        lead_id = str(r.json()["id"])
        return lead_id if await assignment(http, urls["routing"], lead_id) else None

    hs_id = await eventually(hubspot_lead, within=60)
    change = hs_event("contact.propertyChange", HS_CONTACT, prop="phone", value=HS_NEW_PHONE)
    await post_hubspot(http, urls["ingest"], [change])
    return [erase_id, keep_id, hs_id]


async def test_erased_people_leave_no_trace_and_every_count_stays(
    hs_stack: RunningStack, iso: Isolation
) -> None:
    urls = hs_stack.urls
    async with httpx.AsyncClient(headers=AUTH, timeout=20) as http:
        erase_id, keep_id, hs_id = await feed(http, urls)

        async def settled() -> dict[str, Any] | None:
            stored = await stored_text(iso)
            kpis = await watched_kpis(http, urls["metrics"])
            everything_in = (
                kpis.get("leads_assigned") == 3
                and "555-0177" in " ".join(stored.get("metrics.event_log.data", []))
                and all([await assignment(http, urls["routing"], i) for i in (erase_id, keep_id)])
            )
            return kpis if everything_in else None

        try:
            kpis = await eventually(settled, within=90)
        except AssertionError:
            shown = await watched_kpis(http, urls["metrics"])
            raise AssertionError(f"not settled: {shown}\n{hs_stack.log('ingest')}") from None
        before = where_found(await stored_text(iso), ERASED_NEEDLES)
        assert set(ERASED_NEEDLES) - set(before) == set(), before
        assigned = {
            i: await assignment(http, urls["routing"], i) for i in (erase_id, keep_id, hs_id)
        }

        wrong = {"Authorization": "Bearer wrong"}
        refused = await http.delete(f"{urls['ingest']}/v1/leads/{erase_id}", headers=wrong)
        assert refused.status_code == 401
        async with httpx.AsyncClient(timeout=20) as anonymous:
            assert (
                await anonymous.delete(f"{urls['ingest']}/v1/leads/{erase_id}")
            ).status_code == 401
        unknown = await http.delete(f"{urls['ingest']}/v1/leads/{uuid4()}")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"]

        erased = await http.delete(f"{urls['ingest']}/v1/leads/{erase_id}")
        assert erased.status_code == 202, erased.text
        assert erased.json()["status"] == "erased"
        assert len(erased.json()["event_ids"]) == 1
        await post_hubspot(http, urls["ingest"], [hs_event("contact.privacyDeletion", HS_CONTACT)])

        async def nothing_left() -> bool:
            return not where_found(await stored_text(iso), ERASED_NEEDLES)

        try:
            await eventually(nothing_left, within=90)
        except AssertionError:
            raise AssertionError(where_found(await stored_text(iso), ERASED_NEEDLES)) from None

        again = await http.delete(f"{urls['ingest']}/v1/leads/{erase_id}")
        assert again.status_code == 202
        assert again.json() == {"lead_id": erase_id, "status": "already_erased", "event_ids": []}

        stored = await stored_text(iso)
        kept = where_found(stored, KEPT_NEEDLES)
        for place in (
            "ingest.entities.state",
            "routing.leads.attributes",
            "metrics.event_log.data",
        ):
            assert all(place in kept[n] for n in KEPT_NEEDLES), kept
        for place in ("ingest.entities.state", "routing.leads.attributes"):
            assert '"country": "gb"' in " ".join(stored[place])  # what is not personal stays
        assert await watched_kpis(http, urls["metrics"]) == kpis
        for lead_id, decision in assigned.items():
            assert await assignment(http, urls["routing"], lead_id) == decision

        erasures = await read_topic(
            iso.bootstrap,
            iso.topic("salesops.crm.v1"),
            until=lambda seen: sum(e.type == "lead.erased" for e in seen) >= 2,
            settle=True,
        )
        announced = [e for e in erasures if e.type == "lead.erased"]
        assert sorted(e.data["id"] for e in announced) == sorted([erase_id, hs_id])
        for event in announced:
            assert set(event.data) >= {"id", "source", "tenant", "source_id", "erased_at"}

        rebuilt = await http.post(urls["metrics"] + "/v1/rebuild")
        assert rebuilt.status_code == 200, rebuilt.text
        assert await watched_kpis(http, urls["metrics"]) == kpis
        assert not where_found(await stored_text(iso), ERASED_NEEDLES)
