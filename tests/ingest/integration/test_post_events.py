"""POST /v1/events against the real PostgreSQL and broker."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from salesops_common.kafka import Topics
from salesops_common.settings import database_dsn
from salesops_ingest.domain.model import ValidEvent
from salesops_ingest.service_layer.accept import PreparedEvents
from tests.support import AUTH, Isolation, api_event, eventually, read_topic

pytestmark = pytest.mark.integration


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
        (b"{}", {"Authorization": AUTH["Authorization"] + "x"}, 401, "unauthenticated"),
        (
            b"{}",
            {"Authorization": AUTH["Authorization"].replace("Bearer", "Basic")},
            401,
            "unauthenticated",
        ),
        (b"{}", {"Authorization": "Bearer"}, 401, "unauthenticated"),
        (b"{}", {**AUTH, "Idempotency-Key": "k" * 256}, 422, "invalid"),
    ],
    ids=[
        "malformed-json",
        "unknown-type",
        "missing-token",
        "wrong-token",
        "other-scheme",
        "scheme-alone",
        "idempotency-key-too-long",
    ],
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


async def test_the_served_route_checks_what_the_documented_one_declares(
    ingest: httpx.AsyncClient,
) -> None:
    """POST /v1/events is served by a plain Starlette route; its checks answer as FastAPI's
    would for the documented route's dependencies, and the schema still documents them."""
    spec = (await ingest.get("/openapi.json")).json()
    post = spec["paths"]["/v1/events"]["post"]
    assert post["security"] == [{"HTTPBearer": []}]
    [key] = [p for p in post["parameters"] if p["name"] == "idempotency-key"]
    assert key["in"] == "header"
    assert key["schema"]["anyOf"][0]["maxLength"] == 255

    refused = await ingest.post("/v1/events", json={}, headers={"Authorization": "x"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    too_long = await ingest.post(
        "/v1/events", json={}, headers={**AUTH, "Idempotency-Key": "k" * 256}
    )
    assert too_long.json()["error"]["details"] == [
        {
            "loc": ["header", "idempotency-key"],
            "message": "String should have at most 255 characters",
            "type": "string_too_long",
        }
    ]
    # The longest key is taken, and the scheme's case does not matter.
    lower = {"Authorization": AUTH["Authorization"].replace("Bearer", "bearer")}
    event = api_event("account.created", "A-key", {"name": "Acme"})
    kept = await ingest.post(
        "/v1/events", json=event, headers={**lower, "Idempotency-Key": "k" * 255}
    )
    assert kept.status_code == 202, kept.text


async def test_requests_are_counted_by_route_template_with_their_id(
    ingest: httpx.AsyncClient,
) -> None:
    event = api_event("account.created", "A-metrics", {"name": "Acme"})
    resp = await ingest.post("/v1/events", json=event, headers={**AUTH, "X-Request-ID": "rq-1"})
    assert resp.status_code == 202
    assert resp.headers["x-request-id"] == "rq-1"
    minted = await ingest.post("/v1/events", json=event, headers=AUTH)
    assert len(minted.headers["x-request-id"]) == 32
    await ingest.post("/v1/events", json=event, headers={})
    exposition = (await ingest.get("/metrics")).text
    counted = 'salesops_ingest_http_requests_total{method="POST",route="/v1/events",status="%d"}'
    assert counted % 202 + " 2.0" in exposition
    assert counted % 401 + " 1.0" in exposition
    timed = 'salesops_ingest_http_request_duration_seconds_count{method="POST",route="/v1/events"}'
    assert timed + " 3.0" in exposition


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


async def _lock_waiters(db: asyncpg.Connection) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
    )


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "idempotency-key"])
async def test_requests_creating_what_each_other_refers_to_both_commit(
    ingest: httpx.AsyncClient, iso: Isolation, db: asyncpg.Connection, keyed: bool
) -> None:
    """Two requests change one existing account, and each creates a record the other's deal
    refers to (A: account C and a deal owned by rep R; B: rep R and a deal of account C).
    A third transaction holds the shared account while both requests get as far as they
    can, then lets go: taking record locks in two passes (the records changed, then the
    ones referred to) made each request wait for a record the other had just registered,
    and PostgreSQL aborted one of them (500). Until both answer, nothing either wrote is
    visible: each request is one transaction (requests without an Idempotency-Key ran
    their statements in autocommit, releasing record locks at each statement's end)."""

    def headers(name: str) -> dict[str, str]:
        return {**AUTH, "Idempotency-Key": f"key-{name}"} if keyed else AUTH

    shared = api_event("account.created", "E", {"name": "Shared"})
    first = await ingest.post("/v1/events", json=shared, headers=AUTH)
    assert first.status_code == 202, first.text
    a = [
        api_event("account.updated", "E", {"name": "Shared by A"}),
        api_event("account.created", "C", {"name": "Created by A"}),
        api_event("deal.created", "DA", {"amount": "10", "stage": "New", "owner_source_id": "R"}),
    ]
    b = [
        api_event("account.updated", "E", {"name": "Shared by B"}),
        api_event("rep.created", "R", {"name": "Created by B", "email": "r@x.example"}),
        api_event("deal.created", "DB", {"amount": "20", "stage": "New", "account_source_id": "C"}),
    ]
    holder = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "SELECT 1 FROM entities WHERE kind = 'account' AND source_id = 'E' FOR UPDATE"
        )
        post_a = asyncio.create_task(ingest.post("/v1/events", json=a, headers=headers("a")))
        await eventually(lambda: _at_least(db, 1))
        post_b = asyncio.create_task(ingest.post("/v1/events", json=b, headers=headers("b")))
        await eventually(lambda: _at_least(db, 2))
        visible = await db.fetchval(
            "SELECT count(*) FROM entities WHERE source_id IN ('C', 'R', 'DA', 'DB')"
        )
        await tx.commit()
        answers = await asyncio.gather(post_a, post_b)
    finally:
        await holder.close()
    assert visible == 0, "a request's writes were visible before it answered"
    assert [r.status_code for r in answers] == [202, 202], [r.text for r in answers]
    assert [r["status"] for r in answers[0].json()["results"]] == ["accepted"] * 3
    assert [r["status"] for r in answers[1].json()["results"]] == ["accepted"] * 3
    rows = await db.fetch(
        "SELECT kind, source_id, status, state->>'name' AS name FROM entities "
        "WHERE source_id IN ('E', 'C', 'R', 'DA', 'DB') ORDER BY kind, source_id"
    )
    live = {(r["kind"], r["source_id"]): (r["status"], r["name"]) for r in rows}
    assert live[("account", "C")] == ("live", "Created by A")
    assert live[("rep", "R")] == ("live", "Created by B")
    assert live[("deal", "DA")][0] == live[("deal", "DB")][0] == "live"
    assert live[("account", "E")][1] in ("Shared by A", "Shared by B")


async def _at_least(db: asyncpg.Connection, waiting: int) -> bool:
    return await _lock_waiters(db) >= waiting


def _published(scrape: str) -> dict[str, float]:
    """``salesops_ingest_events_published_total`` by type, for source ``api``."""
    prefix = 'salesops_ingest_events_published_total{source="api",type="'
    out = {}
    for line in scrape.splitlines():
        if line.startswith(prefix):
            labels, _, value = line.rpartition(" ")
            out[labels.removeprefix(prefix).removesuffix('"}')] = float(value)
    return out


async def test_events_posted_are_counted_as_published(ingest: httpx.AsyncClient) -> None:
    """Every event a REST request stages for publication is counted once, with or without
    an Idempotency-Key; duplicates and unchanged updates stage nothing and count nothing."""
    rep = api_event("rep.created", "R9", {"name": "Ann", "email": "ann@x.example"})
    deal = api_event(
        "deal.created", "D9", {"amount": "10", "stage": "New", "owner_source_id": "R9"}
    )
    won = api_event("deal.won", "D9", {"stage": "Won"})
    plain = await ingest.post("/v1/events", json=[rep, deal], headers=AUTH)
    keyed = await ingest.post(
        "/v1/events", json=[won, rep], headers={**AUTH, "Idempotency-Key": "metrics-1"}
    )
    assert plain.status_code == keyed.status_code == 202, (plain.text, keyed.text)
    assert [r["status"] for r in keyed.json()["results"]] == ["accepted", "duplicate"]
    scrape = (await ingest.get("/metrics")).text
    assert _published(scrape) == {"rep.created": 1.0, "deal.created": 1.0, "deal.won": 1.0}
    assert 'salesops_ingest_changes_total{outcome="duplicate",source="api"} 1.0' in scrape


async def test_one_request_failing_in_the_database_fails_alone_in_its_group(
    ingest: httpx.AsyncClient, iso: Isolation, db: asyncpg.Connection
) -> None:
    """Requests queued while the writer is busy are committed as one transaction; when the
    database refuses one request's data (a NUL inside a list, which PostgreSQL's jsonb cannot
    hold), that request gets the error and the others in its group are still committed."""
    from salesops_ingest.domain.mapping import load_mappings
    from salesops_ingest.domain.model import validate_events
    from salesops_ingest.service_layer.accept import prepare_events
    from salesops_ingest.service_layer.group_commit import GroupCommit
    from salesops_ingest.service_layer.processor import Mappings, Processor

    dsn = database_dsn(iso.database_url, iso.database("ingest"))
    processor = Processor(
        dsn=dsn, topics=Topics(iso.topic_prefix), mappings=Mappings(load_mappings(None)), parsers={}
    )

    def prepared(*events: dict[str, object]) -> PreparedEvents:
        valid = validate_events(list(events))
        assert all(isinstance(v, ValidEvent) for v in valid), valid
        return prepare_events(processor, [v for v in valid if isinstance(v, ValidEvent)])

    shared = await ingest.post("/v1/events", json=api_event("account.created", "E2"), headers=AUTH)
    assert shared.status_code == 202
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    group = GroupCommit(pool.acquire, processor, writers=1)
    await group.start()
    holder = await asyncpg.connect(dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM entities WHERE source_id = 'E2' FOR UPDATE")
        busy = asyncio.create_task(
            group.accept(prepared(api_event("account.updated", "E2", {"name": "Busy"})))
        )
        await eventually(lambda: _at_least(db, 1))
        good = asyncio.create_task(group.accept(prepared(api_event("rep.created", "G1"))))
        bad = asyncio.create_task(
            group.accept(prepared(api_event("rep.created", "B1", {"licensed_tools": ["a\x00b"]})))
        )

        async def both_queued() -> bool:
            return group.queued == 2

        await eventually(both_queued)
        await tx.commit()
        answers = await asyncio.gather(busy, good, bad, return_exceptions=True)
    finally:
        await holder.close()
        await group.stop()
        await pool.close()
    assert [r.status for r in answers[0]] == ["accepted"]  # type: ignore[union-attr]
    assert [r.status for r in answers[1]] == ["accepted"]  # type: ignore[union-attr]
    assert isinstance(answers[2], asyncpg.DataError), answers[2]
    stored = await db.fetch("SELECT source_id, status FROM entities WHERE kind = 'rep'")
    assert {(r["source_id"], r["status"]) for r in stored} == {("G1", "live")}


async def test_only_a_pending_delivery_wakes_the_processor(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    """REST events are archived as a delivery already processed: their transaction must not
    wake the delivery processor for nothing. A delivery left pending (a webhook's) does."""
    woken: list[str] = []
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        await conn.add_listener("ingest_deliveries", lambda *args: woken.append(args[2]))
        lead = api_event("lead.created", "L-quiet", {"email": "quiet@acme.example"})
        resp = await ingest.post("/v1/events", json=lead, headers=AUTH)
        assert resp.status_code == 202, resp.text
        # A pending delivery committed after the REST request's transaction: notifications
        # arrive in commit order, so a REST one would come first.
        await conn.execute(
            "INSERT INTO deliveries (source, headers, body, items) "
            """VALUES ('api', '{"x-salesops-format": "records"}', '[]', 0)"""
        )
        await eventually(lambda: _true(woken))
        assert woken == ["ingest_deliveries"]
    finally:
        await conn.close()


async def _true(values: list[str]) -> bool:
    return bool(values)
