"""Concurrent ``POST /v1/events`` requests against the real PostgreSQL and broker: requests
that create records other requests refer to, and ingest's own counters of what it publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from salesops_common.settings import database_dsn
from salesops_ingest.bootstrap import create_app
from salesops_ingest.config import IngestSettings
from tests.support import AUTH, Isolation, api_event, eventually, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(database=iso.database("ingest"), **iso.settings_kwargs())
    async with running(create_app(settings), consumers=False) as client:
        yield client


@pytest.fixture
async def db(iso: Isolation, ingest: httpx.AsyncClient) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        yield conn
    finally:
        await conn.close()


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
