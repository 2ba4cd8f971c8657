"""``DELETE /v1/leads/{id}`` on ingest alone: what it scrubs in ingest's own tables, what it
keeps, and that the erased lead can no longer be matched as a duplicate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from salesops_ingest.adapters.state import loads_json, record_dead_letters
from tests.ingest.integration.crm_support import ingest_app, ingest_db, rows
from tests.support import AUTH, Isolation, api_event

pytestmark = pytest.mark.integration

PERSON = {
    "email": "Olwen.Pryce@Pryce-Mail.example",
    "first_name": "Olwen",
    "last_name": "Pryce",
    "phone": "+44 20 7946 0555",
    "company": "Pryce Partners",
    "postal_code": "CF10 1AA",
    "country": "GB",
    "industry": "Retail",
}
OTHER = {"email": "ifan@other.example", "first_name": "Ifan", "last_name": "Other", "country": "GB"}


@pytest.fixture
async def ingest(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_app(iso, consumers=False) as client:
        yield client


async def post(client: httpx.AsyncClient, *events: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/events", json=list(events), headers=AUTH)
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


async def test_delete_scrubs_ingests_copy_and_keeps_the_lead(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    answer = await post(
        ingest,
        api_event("lead.created", "P1", PERSON),
        api_event("lead.created", "P2", OTHER),
        api_event("lead.created", "P1-again", {**PERSON, "first_name": "Olwen M."}),
    )
    lead_id, other_id, _ = (r["entity_id"] for r in answer["results"])
    assert [r["status"] for r in answer["results"]] == ["accepted", "accepted", "merged"]
    conn = await ingest_db(iso)
    try:  # what an unmappable change of each lead leaves, through the pipeline's own adapter
        await record_dead_letters(
            conn,
            [
                ("api", None, "k1", "bad", {"source_id": "P1", "properties": dict(PERSON)}),
                ("api", None, "k2", "bad", {"source_id": "P2", "properties": dict(OTHER)}),
            ],
        )
    finally:
        await conn.close()
    outbox_before = len(await rows(iso, "SELECT id FROM outbox"))

    resp = await ingest.delete(f"/v1/leads/{lead_id}", headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "erased"
    assert len(resp.json()["event_ids"]) == 2  # the lead's own id and its duplicate's

    states = [
        loads_json(r["state"])
        for r in await rows(iso, "SELECT state FROM entities WHERE id = $1", lead_id)
    ]
    assert len(states) == 2
    for state in states:
        assert {f: state.get(f) for f in PERSON} == {
            **dict.fromkeys(PERSON),
            "country": "GB",
            "industry": "Retail",
        }
    assert await rows(iso, "SELECT 1 FROM lead_keys WHERE lead_id = $1", lead_id) == []
    assert await rows(iso, "SELECT 1 FROM lead_keys WHERE lead_id = $1", other_id) != []
    letters = {
        r["item_key"]: loads_json(r["item"])
        for r in await rows(iso, "SELECT item_key, item FROM dead_letters")
    }
    kept = {"country": "GB", "industry": "Retail"}
    assert letters["k1"]["properties"] == {**dict.fromkeys(PERSON), **kept}
    assert letters["k2"]["properties"] == OTHER
    lead_rows = await rows(
        iso, "SELECT payload, headers FROM outbox WHERE key = $1", lead_id.encode()
    )
    payloads = [
        (orjson.loads(bytes(r["headers"]))["ce_type"], orjson.loads(bytes(r["payload"])))
        for r in lead_rows
    ]
    assert sorted(t for t, _ in payloads) == [
        "io.salesops.lead.created",
        "io.salesops.lead.erased",
        "io.salesops.lead.merged",
    ]
    for _, data in payloads:
        assert not {f for f in ("email", "first_name", "last_name", "phone") if data.get(f)}
    erased = next(d for t, d in payloads if t.endswith("erased"))  # the canonical lead's
    assert erased["id"] == lead_id
    assert erased["source_id"] == "P1"
    body = b"".join(bytes(r["body"]) for r in await rows(iso, "SELECT body FROM deliveries"))
    for value in ("Olwen", "Pryce", "7946 0555", "CF10 1AA"):
        assert value.encode() not in body
    assert b"ifan@other.example" in body

    again = await ingest.delete(f"/v1/leads/{lead_id}", headers=AUTH)
    assert again.status_code == 202
    assert again.json()["status"] == "already_erased"
    assert len(await rows(iso, "SELECT id FROM outbox")) == outbox_before + 2

    # The same person arriving again is a new lead: the erased one cannot be matched.
    returning = await post(ingest, api_event("lead.created", "P3", PERSON))
    assert returning["results"][0]["status"] == "accepted"
    assert returning["results"][0]["entity_id"] != lead_id


async def test_delete_needs_the_token_and_a_known_lead(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    answer = await post(ingest, api_event("lead.created", "P1", PERSON))
    lead_id = answer["results"][0]["entity_id"]
    assert (await ingest.delete(f"/v1/leads/{lead_id}")).status_code == 401
    missing = await ingest.delete(f"/v1/leads/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=AUTH)
    assert missing.status_code == 404
    assert (await ingest.delete("/v1/leads/not-a-uuid", headers=AUTH)).status_code == 422
    # An account id is not a lead.
    account = await post(ingest, api_event("account.created", "A1", {"name": "Pryce Partners"}))
    account_id = account["results"][0]["entity_id"]
    assert (await ingest.delete(f"/v1/leads/{account_id}", headers=AUTH)).status_code == 404
    # Only ingest announces an erasure: a client cannot post one.
    posted = await ingest.post("/v1/events", json=[api_event("lead.erased", "P1")], headers=AUTH)
    assert posted.status_code == 422
    state = await rows(iso, "SELECT state FROM entities WHERE id = $1", lead_id)
    assert loads_json(state[0]["state"])["email"] == "olwen.pryce@pryce-mail.example"
