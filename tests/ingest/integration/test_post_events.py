"""POST /v1/events against the real PostgreSQL and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from salesops_common.settings import database_dsn
from salesops_ingest.bootstrap import create_app
from salesops_ingest.config import IngestSettings
from tests.support import AUTH, Isolation, api_event, read_topic, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Without its writeback consumer: these tests put nothing on routing's topic."""
    settings = IngestSettings(database=iso.database("ingest"), **iso.settings_kwargs())
    async with running(create_app(settings), consumers=False) as client:
        yield client


async def stored_counts(iso: Isolation) -> tuple[int, int]:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        received = await conn.fetchval("SELECT count(*) FROM deliveries")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
        return int(received), int(outbox)
    finally:
        await conn.close()


async def test_a_new_lead_is_published_with_canonical_ids(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    rep = api_event(
        "rep.created", "R1", {"name": "Ann Rep", "email": "ann@x.example", "active": True}
    )
    lead = api_event("lead.created", "L1", {"email": "bo@acme.example", "owner_source_id": "R1"})
    resp = await ingest.post("/v1/events", json=[rep, lead], headers=AUTH)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    rep_id, lead_id = (r["entity_id"] for r in body["results"])

    events = await read_topic(
        iso.bootstrap, iso.topic("salesops.crm.v1"), until=lambda seen: len(seen) >= 2
    )
    by_type = {e.type: e for e in events}
    published = by_type["lead.created"]
    assert published.subject == lead_id
    assert published.key == lead_id
    assert published.data["owner_id"] == rep_id
    assert published.data["email"] == "bo@acme.example"
    assert str(published.id) == body["results"][1]["event_id"]
    assert published.source == "/ingest/api/default"

    lookup = await ingest.get(
        "/v1/entities", params={"source": "api", "source_id": "L1", "kind": "lead"}, headers=AUTH
    )
    assert lookup.status_code == 200
    assert lookup.json()["id"] == lead_id


async def test_a_repeated_delivery_is_a_duplicate_and_publishes_nothing_new(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    event = api_event("lead.created", "L2", {"email": "x@y.example"}, source_event_id="same")
    first = await ingest.post("/v1/events", json=event, headers=AUTH)
    again = await ingest.post("/v1/events", json=[event, event], headers=AUTH)
    assert first.json()["accepted"] == 1
    assert again.json() == {
        "accepted": 0,
        "duplicates": 2,
        "unchanged": 0,
        "merged": 0,
        "results": [{**first.json()["results"][0], "status": "duplicate"}] * 2,
    }
    # Both requests are archived as received; only the first published anything.
    assert await stored_counts(iso) == (2, 1)


async def test_an_idempotency_key_replays_the_first_answer(ingest: httpx.AsyncClient) -> None:
    event = api_event("account.created", "A1", {"name": "Acme"})
    headers = {**AUTH, "Idempotency-Key": "k-1"}
    first = await ingest.post("/v1/events", json=event, headers=headers)
    retry = await ingest.post("/v1/events", json=event, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    other = await ingest.post(
        "/v1/events", json=api_event("account.created", "A2"), headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", AUTH, 400, "malformed"),
        (
            b'[{"type": "lead.exploded", "source_event_id": "e", '
            b'"occurred_at": "2026-01-01T00:00:00Z", "data": {"source_id": "x"}}]',
            AUTH,
            422,
            "invalid",
        ),
        (
            b'[{"type": "lead.created", "source_event_id": "e", '
            b'"occurred_at": "2026-01-01T00:00:00Z", "data": {"source_id": "x"}}]',
            {},
            401,
            "unauthenticated",
        ),
    ],
    ids=["malformed-json", "unknown-type", "missing-token"],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    ingest: httpx.AsyncClient,
    iso: Isolation,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    resp = await ingest.post(
        "/v1/events", content=body, headers={**headers, "content-type": "application/json"}
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert await stored_counts(iso) == (0, 0)


async def test_an_oversize_array_is_refused_whole(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    events = [api_event("lead.created", f"L{i}") for i in range(1001)]
    resp = await ingest.post("/v1/events", json=events, headers=AUTH)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_large"
    assert await stored_counts(iso) == (0, 0)


async def test_one_invalid_event_rejects_the_batch_naming_index_and_field(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    good = api_event("lead.created", "L1")
    bad = api_event("deal.created", "D1", {"amount": "lots"})
    resp = await ingest.post("/v1/events", json=[good, bad], headers=AUTH)
    assert resp.status_code == 422
    details = resp.json()["error"]["details"]
    assert details[0]["index"] == 1
    assert details[0]["field"] == "data.amount"
    assert await stored_counts(iso) == (0, 0)


async def test_declared_lifecycle_types_publish_once_per_transition(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    created = api_event("lead.created", "LC1", {"email": "lc1@acme.example"})
    converted = api_event("lead.converted", "LC1")
    again = api_event("lead.converted", "LC1")
    answer = await ingest.post("/v1/events", json=[created, converted, again], headers=AUTH)
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "accepted", "unchanged"]
    events = await read_topic(
        iso.bootstrap,
        iso.topic("salesops.crm.v1"),
        until=lambda seen: any(e.type == "lead.converted" for e in seen),
    )
    assert [e.type for e in events] == ["lead.created", "lead.converted"]
