"""Duplicate matching reads a bounded candidate set (issue 7's soak: every new lead used to
read every lead of its company domain, and ingest slowed down as the company grew), and still
finds the duplicates the rules define; migration 0004 re-keys a database indexed the old way."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx
import pytest

from salesops_common.db import create_engine, migrate
from salesops_common.settings import database_dsn
from salesops_ingest.bootstrap import MIGRATIONS
from salesops_ingest.domain.matching import LeadIdentity, blocking_keys
from salesops_ingest.service_layer.pipeline import LeadIndex
from tests.support import AUTH, Isolation, api_event, downgrade_to

pytestmark = pytest.mark.integration
DOMAIN = "acme.example"
COLLEAGUES = 300
_SYLLABLES = "ka ri mo ta lu ne so vi da pe gor ban tel mar vin sul dor fen hal jor".split()


def _spellings(last: str) -> set[str]:
    last = last.lower()
    return {last} | {last[:i] + last[i + 1 :] for i in range(len(last))}


def far_apart_names(count: int) -> list[tuple[str, str]]:
    """``count`` (first, last) names whose last names are more than one typo apart, from each
    other and from "Newcomer" (no two have a spelling with a letter left out in common):
    distinct people no rule could match."""
    rng = random.Random(5)
    kept: list[tuple[str, str]] = []
    used = _spellings("Newcomer")
    while len(kept) < count:
        last = "".join(rng.choice(_SYLLABLES) for _ in range(3)).title()
        if _spellings(last).isdisjoint(used):
            used |= _spellings(last)
            kept.append((rng.choice(["Anna", "Bruno", "Clara", "David", "Elena"]), last))
    return kept


def lead(source_id: str, first: str, last: str, email: str | None = None) -> dict[str, Any]:
    data = {"email": email or f"{source_id.lower()}@{DOMAIN}", "company": "Acme", "domain": DOMAIN}
    return api_event("lead.created", source_id, {**data, "first_name": first, "last_name": last})


async def post(ingest: httpx.AsyncClient, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = await ingest.post("/v1/events", json=events, headers=AUTH)
    assert resp.status_code == 202, resp.text
    results: list[dict[str, Any]] = resp.json()["results"]
    return results


async def company(ingest: httpx.AsyncClient) -> dict[tuple[str, str], str]:
    """COLLEAGUES named leads and as many without a name under DOMAIN, by name -> lead id."""
    names = far_apart_names(COLLEAGUES)
    results = await post(ingest, [lead(f"C{i}", f, la) for i, (f, la) in enumerate(names)])
    assert {r["status"] for r in results} == {"accepted"}
    nameless = [
        api_event("lead.created", f"N{i}", {"email": f"n{i}@{DOMAIN}", "company": "Acme"})
        for i in range(COLLEAGUES)
    ]
    assert {r["status"] for r in await post(ingest, nameless)} == {"accepted"}
    return {name: r["entity_id"] for name, r in zip(names, results, strict=True)}


async def test_a_new_lead_reads_only_the_leads_its_rules_could_match(
    ingest: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """600 leads under one domain; a new lead there is compared with the few whose last name
    is one typo from its own, not with the 600 (before issue 7's fix: all of them)."""
    ids = await company(ingest)
    under_domain = await db.fetchval(
        "SELECT count(DISTINCT lead_id) FROM lead_keys WHERE identity->>'domain' = $1", DOMAIN
    )
    assert under_domain >= COLLEAGUES  # the nameless ones have their e-mail key only

    (first, last), colleague_id = next(iter(ids.items()))
    newcomer = LeadIdentity(
        email=f"newcomer@{DOMAIN}", domain=DOMAIN, first_name="Quentin", last_name="Newcomer"
    )
    typo = LeadIdentity(domain=DOMAIN, first_name=first, last_name=last[:-1])  # a letter lost
    newcomers = await LeadIndex().candidates(db, blocking_keys(newcomer))
    assert newcomers == []
    typos = {str(lead_id) for lead_id, _ in await LeadIndex().candidates(db, blocking_keys(typo))}
    assert colleague_id in typos
    assert len(typos) <= 3  # the colleague, and at most a couple two letters from it


async def test_duplicates_are_still_merged_among_many_colleagues(
    ingest: httpx.AsyncClient,
) -> None:
    ids = await company(ingest)
    (first, last), target = list(ids.items())[7]
    other_first = "Bruno" if first != "Bruno" else "Clara"
    results = await post(
        ingest,
        [
            lead("D1", first, last[:2] + last[3] + last[2] + last[4:], "x1@gmail.com"),  # typo
            lead("D2", last, first, "x2@gmail.com"),  # names swapped
            lead("D3", first[0] + ".", last, "x3@gmail.com"),  # an initial
            lead("D4", other_first, last, "x4@gmail.com"),  # a colleague of the same family
        ],
    )
    assert [r["status"] for r in results] == ["merged", "merged", "merged", "accepted"]
    assert [r["entity_id"] for r in results[:3]] == [target] * 3


async def test_migration_0004_rekeys_leads_indexed_by_domain_and_phone(
    ingest: httpx.AsyncClient, iso: Isolation, db: asyncpg.Connection
) -> None:
    await company(ingest)
    phone = {"phone": "+4930123456", "company": "Acme"}
    await post(
        ingest,
        [
            api_event("lead.created", "P1", {**phone, "first_name": "Ina", "last_name": "Berg"}),
            api_event("lead.created", "P2", {**phone, "email": f"p2@{DOMAIN}"}),
        ],
    )
    query = "SELECT key_type, value, lead_id, identity FROM lead_keys ORDER BY 1, 2, 3"
    keyed = [tuple(r) for r in await db.fetch(query)]
    assert {r[0] for r in keyed} == {
        "email",
        "phone_name",
        "phone_names",
        "domain_name",
        "domain_names",
    }

    engine = create_engine(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(downgrade_to, MIGRATIONS, "0003")
            await conn.commit()
        old = await db.fetch("SELECT key_type, count(*) AS n FROM lead_keys GROUP BY 1")
        # every live lead under its domain and phone, named or not, as before issue 7 (P1
        # has no e-mail, P2 no name)
        assert {r["key_type"]: r["n"] for r in old} == {
            "email": 2 * COLLEAGUES + 1,
            "domain": 2 * COLLEAGUES + 1,
            "phone": 2,
        }
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    assert [tuple(r) for r in await db.fetch(query)] == keyed
