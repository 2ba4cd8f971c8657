"""HubSpot end to end: signed webhooks in, full records read from the CRM API (a local
stand-in server), canonical events out on the real broker, owners written back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from salesops_common.envelope import Envelope
from salesops_common.events import LeadAssigned
from tests.ingest.fakes.hubspot_api import FakeHubSpot
from tests.ingest.integration.crm_support import (
    PORTAL,
    count,
    crm_events,
    hs_event,
    ingest_app,
    of_type,
    post_hubspot,
    settle,
    sign_v3,
)
from tests.support import AUTH, Isolation, eventually, publish

pytestmark = pytest.mark.integration

TOKEN = "hs-private-app-token"


@pytest.fixture
async def hs() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(token=TOKEN) as fake:
        fake.owners = [
            {
                "id": "501",
                "email": "Ana.Rep@Example.com",
                "firstName": "Ana",
                "lastName": "Rep",
                "archived": False,
                "teams": [{"id": "1", "name": "EMEA", "primary": True}],
            }
        ]
        yield fake


@pytest.fixture
async def ingest(iso: Isolation, hs: FakeHubSpot) -> AsyncIterator[httpx.AsyncClient]:
    """Without its writeback consumer, for the tests that put nothing on routing's topic."""
    async with ingest_app(
        iso, consumers=False, hubspot_access_token=TOKEN, hubspot_api_base=hs.base_url
    ) as client:
        yield client


@pytest.fixture
async def writing_back(iso: Isolation, hs: FakeHubSpot) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_app(iso, hubspot_access_token=TOKEN, hubspot_api_base=hs.base_url) as client:
        yield client


def contact(hs: FakeHubSpot, object_id: str, **props: str) -> None:
    hs.objects[("contact", object_id)] = {
        "email": "  Jane.Doe@Acme-Corp.com ",
        "firstname": "JANE",
        "lastname": "doe",
        "company": "Acme Corp",
        "phone": "(415) 555-0132",
        "country": "United States",
        "hubspot_owner_id": "501",
        "createdate": "2026-11-01T10:00:00.000Z",
        "lastmodifieddate": "2026-11-01T10:00:00.000Z",
        **props,
    }


async def test_a_contact_creation_is_read_in_full_normalized_and_published(
    ingest: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    contact(hs, "101")
    answer = await post_hubspot(ingest, [hs_event("contact.creation", 101)])
    assert answer.status_code == 204

    events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))
    lead = of_type(events, "lead.created")[0]
    assert lead.data["email"] == "jane.doe@acme-corp.com"
    assert lead.data["phone"] == "+14155550132"
    assert lead.data["country"] == "US"
    assert lead.data["first_name"] == "Jane"
    assert lead.data["last_name"] == "Doe"
    assert lead.data["domain"] == "acme-corp.com"
    assert lead.data["source"] == "hubspot"
    assert lead.data["tenant"] == str(PORTAL)
    assert lead.source == f"/ingest/hubspot/{PORTAL}"
    # The owner was unknown: read from the owners API and published as a rep.
    events = await crm_events(iso, until=lambda ev: of_type(ev, "rep.created"))
    rep = of_type(events, "rep.created")[0]
    assert rep.data["email"] == "ana.rep@example.com"
    assert lead.data["owner_id"] == rep.data["id"]
    assert hs.requests_to("GET", "/crm/v3/objects/contacts/101")


async def test_bad_signatures_stale_timestamps_and_bad_bodies_store_nothing(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    body = orjson.dumps([hs_event("contact.creation", 7)])
    wrong = sign_v3(body, secret="not-the-secret")
    stale = sign_v3(body, ts=int(time.time() * 1000) - 6 * 60 * 1000)
    future = sign_v3(body, ts=int(time.time() * 1000) + 6 * 60 * 1000)
    for headers in (wrong, stale, future, {"Content-Type": "application/json"}):
        answer = await ingest.post("/webhooks/hubspot", content=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"]
    tampered = await ingest.post(
        "/webhooks/hubspot", content=body.replace(b"7", b"8"), headers=sign_v3(body)
    )
    assert tampered.status_code == 401

    not_json = b"[{not json"
    bad = await ingest.post("/webhooks/hubspot", content=not_json, headers=sign_v3(not_json))
    assert bad.status_code == 400
    too_many = orjson.dumps([hs_event("contact.creation", i) for i in range(101)])
    over = await ingest.post("/webhooks/hubspot", content=too_many, headers=sign_v3(too_many))
    assert over.status_code == 413
    huge = b"[" + b" " * (1024 * 1024) + b"]"
    big = await ingest.post("/webhooks/hubspot", content=huge, headers=sign_v3(huge))
    assert big.status_code == 413
    assert await count(iso, "SELECT count(*) FROM deliveries") == 0


async def test_retried_deliveries_are_deduplicated_and_no_op_updates_publish_nothing(
    ingest: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    contact(hs, "102")
    await post_hubspot(ingest, [hs_event("contact.creation", 102)])
    await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))

    t = int(time.time() * 1000)
    change = hs_event("contact.propertyChange", 102, prop="lastname", value="Smith", occurred_at=t)
    retry = {**change, "attemptNumber": 3}
    same_value = hs_event("contact.propertyChange", 102, prop="company", value="Acme Corp")
    for events in ([change], [retry, same_value]):
        assert (await post_hubspot(ingest, events)).status_code == 204
    await eventually(lambda: _processed(iso, 3))
    events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.updated"))
    await settle(iso)
    events = await crm_events(iso, until=lambda ev: len(ev) >= len(events), settle=True)
    updates = of_type(events, "lead.updated")
    assert len(updates) == 1
    assert updates[0].data["last_name"] == "Smith"
    assert "company" not in updates[0].data


async def _processed(iso: Isolation, deliveries: int) -> bool:
    done = await count(iso, "SELECT count(*) FROM deliveries WHERE processed_at IS NOT NULL")
    return done >= deliveries


async def test_out_of_order_updates_never_overwrite_newer_values(
    ingest: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    contact(hs, "103")
    await post_hubspot(ingest, [hs_event("contact.creation", 103)])
    await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))
    now = int(time.time() * 1000)
    newer = hs_event("contact.propertyChange", 103, prop="lastname", value="New", occurred_at=now)
    older = hs_event(
        "contact.propertyChange", 103, prop="lastname", value="Old", occurred_at=now - 60_000
    )
    await post_hubspot(ingest, [newer])
    await post_hubspot(ingest, [older])
    await eventually(lambda: _processed(iso, 3))
    await settle(iso)
    events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.updated"), settle=True)
    names = [e.data["last_name"] for e in of_type(events, "lead.updated")]
    assert names == ["New"]


async def test_a_deal_moving_to_closed_won_publishes_deal_won(
    ingest: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    hs.objects[("deal", "900")] = {
        "dealname": "Acme renewal",
        "amount": "12500.50",
        "deal_currency_code": "EUR",
        "dealstage": "qualifiedtobuy",
        "createdate": "2026-10-01T09:00:00.000Z",
        "hs_lastmodifieddate": "2026-10-01T09:00:00.000Z",
    }
    await post_hubspot(ingest, [hs_event("deal.creation", 900)])
    events = await crm_events(iso, until=lambda ev: of_type(ev, "deal.created"))
    created = of_type(events, "deal.created")[0]
    assert created.data["stage"] == "Qualification"
    assert created.data["amount"] == "12500.50"

    await post_hubspot(
        ingest, [hs_event("deal.propertyChange", 900, prop="dealstage", value="closedwon")]
    )
    events = await crm_events(iso, until=lambda ev: of_type(ev, "deal.won"))
    won = of_type(events, "deal.won")[0]
    assert won.data["id"] == created.data["id"]
    assert won.data["stage"] == "Won"
    assert won.data["closed_at"]


async def test_an_unmapped_stage_is_dead_lettered_and_a_retry_after_the_fix_goes_through(
    iso: Isolation, hs: FakeHubSpot, tmp_path: object
) -> None:
    from pathlib import Path

    from salesops_ingest.domain import mapping

    hs.objects[("deal", "901")] = {
        "dealname": "Custom pipeline deal",
        "amount": "100",
        "dealstage": "custom_stage_7",
        "hs_lastmodifieddate": "2026-10-01T09:00:00.000Z",
    }
    override = Path(str(tmp_path))
    async with ingest_app(
        iso,
        consumers=False,
        hubspot_access_token=TOKEN,
        hubspot_api_base=hs.base_url,
        mappings_dir=str(override),
    ) as ingest:
        await post_hubspot(ingest, [hs_event("deal.creation", 901)])

        async def letters() -> list[dict[str, object]]:
            answer = await ingest.get("/v1/dead-letters", headers=AUTH)
            items: list[dict[str, object]] = answer.json()["items"]
            return items

        dead = (await eventually(letters))[0]
        assert "custom_stage_7" in str(dead["reason"])
        assert (await ingest.get("/v1/dead-letters")).status_code == 401

        shipped = (mapping.SHIPPED / "hubspot.yaml").read_text()
        (override / "hubspot.yaml").write_text(shipped + "  custom_stage_7: {stage: Proposal}\n")
        mapping.load_mappings.cache_clear()
        retried = await ingest.post(f"/v1/dead-letters/{dead['id']}/retry", headers=AUTH)
        assert retried.status_code == 200
        # The running processor keeps its mappings until restart: a retry before the restart
        # fails again and stays open.
        assert retried.json()["status"] == "open"

    mapping.load_mappings.cache_clear()
    async with ingest_app(
        iso,
        consumers=False,
        hubspot_access_token=TOKEN,
        hubspot_api_base=hs.base_url,
        mappings_dir=str(override),
    ) as ingest:
        retried = await ingest.post(f"/v1/dead-letters/{dead['id']}/retry", headers=AUTH)
        assert retried.json()["status"] == "resolved"
        events = await crm_events(iso, until=lambda ev: of_type(ev, "deal.created"))
        assert of_type(events, "deal.created")[0].data["stage"] == "Proposal"
    mapping.load_mappings.cache_clear()


async def test_routing_decisions_are_written_back_once_and_the_echo_changes_nothing(
    writing_back: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    contact(hs, "104", hubspot_owner_id="")
    hs.owners.append({"id": "502", "email": "bo@example.com", "firstName": "Bo", "archived": False})
    await post_hubspot(writing_back, [hs_event("contact.creation", 104)])
    await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))
    synced = await writing_back.post("/v1/syncs", headers=AUTH, json={"sources": ["hubspot"]})
    assert synced.status_code == 200, synced.text
    events = await crm_events(
        iso, until=lambda ev: of_type(ev, "lead.created") and len(of_type(ev, "rep.created")) >= 2
    )
    lead = of_type(events, "lead.created")[0]
    bo = next(e for e in of_type(events, "rep.created") if e.data["email"] == "bo@example.com")

    decision = Envelope.of(
        "lead.assigned",
        LeadAssigned(
            lead_id=lead.data["id"],
            rep_id=bo.data["id"],
            strategy="round_robin",
            reason="test",
            assigned_at="2026-11-29T10:00:00+00:00",
        ),
        source="/routing",
    )
    await publish(iso.bootstrap, iso.topic("salesops.routing.v1"), [decision, decision])

    async def written() -> list[object]:
        return hs.requests_to("PATCH", "/crm/v3/objects/contacts/104")

    patches = await eventually(written, within=60)
    assert patches[0].json == {"properties": {"hubspot_owner_id": "502"}}  # type: ignore[attr-defined]
    listing = await eventually(
        lambda: _writebacks(writing_back, lead.data["id"], "done"), within=30
    )
    assert listing[0]["owner_source_id"] == "502"

    # HubSpot reports the change back: recognized as ours, nothing published.
    echo = hs_event(
        "contact.propertyChange", 104, prop="hubspot_owner_id", value="502", change_source="API"
    )
    await post_hubspot(writing_back, [echo])
    await eventually(lambda: _processed(iso, 2))
    await settle(iso)
    events = await crm_events(iso, until=lambda ev: len(ev) >= 3, settle=True)
    assert not of_type(events, "lead.updated")
    assert len(hs.requests_to("PATCH")) == 1
    metrics = (await writing_back.get("/metrics")).text
    assert 'salesops_ingest_writebacks_total{result="done",source="hubspot"} 1.0' in metrics


async def _writebacks(ingest: httpx.AsyncClient, lead_id: str, status: str) -> list[dict[str, str]]:
    answer = await ingest.get("/v1/writebacks", params={"lead_id": lead_id}, headers=AUTH)
    items: list[dict[str, str]] = answer.json()["items"]
    return [i for i in items if i["status"] == status]


async def test_a_second_contact_with_the_same_email_is_merged_not_created(
    ingest: httpx.AsyncClient, hs: FakeHubSpot, iso: Isolation
) -> None:
    contact(hs, "105")
    contact(hs, "106", email="JANE.DOE@acme-corp.com", firstname="Jane", lastname="Doe")
    await post_hubspot(ingest, [hs_event("contact.creation", 105)])
    await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))
    await post_hubspot(ingest, [hs_event("contact.creation", 106)])
    events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.merged"))
    merged = of_type(events, "lead.merged")[0]
    created = of_type(events, "lead.created")
    assert len(created) == 1
    assert merged.data["merged_into_id"] == created[0].data["id"]
    assert merged.data["rule"] == "email"
    assert merged.data["score"] == 1.0
    found = await ingest.get(
        "/v1/entities",
        params={"source": "hubspot", "tenant": str(PORTAL), "source_id": "106", "kind": "lead"},
        headers=AUTH,
    )
    assert found.json()["id"] == created[0].data["id"]
