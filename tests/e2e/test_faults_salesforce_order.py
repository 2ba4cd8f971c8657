"""Salesforce Outbound Messages out of order, end to end: every version of a set of leads,
accounts and opportunities, shuffled (newer before older, a record's update before anything
else about it), tasks about leads before the leads, each message delivered twice at once and
some notifications again in a later message. Outbound Messages carry a record's latest values
with no "create": ingest treats the first notification of an unknown record as its creation
(unlike HubSpot, whose changes before the creation are read back from the API), so a task
naming a lead that has not arrived yet is the Salesforce form of "events for a lead before
the lead".

Every service must end on the newest version of each record, with each fact published and
applied once (tests/e2e/reconcile.py), and nothing lost."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.faults import CATCH_UP_WITHIN, running_stack
from tests.e2e.reconcile import database, published, reconcile
from tests.ingest.fakes.salesforce_api import FakeSalesforce, sf_time
from tests.ingest.unit.test_salesforce import ORG_15, ORG_18, outbound
from tests.support import Isolation, eventually

pytestmark = pytest.mark.e2e

SF_TOKEN = "sf-e2e-token"
LEADS, DEALS, VERSIONS = 8, 6, 3
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Opportunity stages, oldest first; the newest closes the deal (won for even deals).
STAGES = ("Prospecting", "Negotiation/Review")
CANONICAL = {"Prospecting": "Prospecting", "Negotiation/Review": "Negotiation"}


@dataclass(frozen=True)
class Version:
    sobject: str
    record_id: str
    number: int  # 0 oldest
    fields: dict[str, str]

    @property
    def stamp(self) -> datetime:
        return T0 + timedelta(minutes=self.number)


def _lead_id(i: int) -> str:
    return f"00Q5g00000Sf{i:03d}AAA"


def _account_id(i: int) -> str:
    return f"0015g00000Sf{i:03d}AAA"


def _deal_id(i: int) -> str:
    return f"0065g00000Sf{i:03d}AAA"


def lead_version(i: int, n: int) -> Version:
    return Version(
        "Lead",
        _lead_id(i),
        n,
        {
            "Email": f"buyer{i}@sforder{i}.example",
            "FirstName": f"Buyer{i}",
            "LastName": f"Order{i}",
            "Company": f"Order {i} v{n}",
            "NumberOfEmployees": str(10 * (i + 1) + n),
            "LeadSource": "Web",
        },
    )


def closing_stage(i: int) -> str:
    return "Closed Won" if i % 2 == 0 else "Closed Lost"


def deal_version(i: int, n: int) -> Version:
    stage = STAGES[n] if n < len(STAGES) else closing_stage(i)
    return Version(
        "Opportunity",
        _deal_id(i),
        n,
        {
            "Name": f"Order deal {i}",
            "Amount": f"{1000 * (i + 1) + 100 * n}.0",
            "StageName": stage,
            "AccountId": _account_id(i),
            "CloseDate": "2026-12-31",
        },
    )


def account_version(i: int) -> Version:
    return Version("Account", _account_id(i), VERSIONS, {"Name": f"Order account {i}"})


def task_version(i: int) -> Version:
    """A task about lead ``i``: sent before any notification of the lead."""
    return Version(
        "Task",
        f"00T5g00000Sf{i:03d}AAA",
        VERSIONS,
        {
            "Subject": f"Call buyer {i}",
            "TaskSubtype": "Call",
            "WhoId": _lead_id(i),
            "CreatedDate": sf_time(T0),
        },
    )


def notification(v: Version, delivery: str) -> str:
    fields = {**v.fields, "LastModifiedDate": sf_time(v.stamp)}
    body = "".join(f"<sf:{k}>{val}</sf:{k}>" for k, val in fields.items())
    return (
        f"<Notification><Id>{delivery}</Id>"
        f'<sObject xsi:type="sf:{v.sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{v.record_id}</sf:Id>{body}</sObject></Notification>"
    )


def plan(rng: random.Random) -> list[list[str]]:
    """The outbound messages, in sending order: the tasks first (before their leads), then
    every version of every record shuffled, half of the records newest first; a few
    notifications sent again (same Notification Id) in a later message."""
    versions: list[Version] = []
    for i in range(LEADS):
        mine = [lead_version(i, n) for n in range(VERSIONS)]
        versions += mine[::-1] if i % 2 == 0 else rng.sample(mine, len(mine))
    for i in range(DEALS):
        mine = [deal_version(i, n) for n in range(VERSIONS)]
        versions += mine[::-1] if i % 2 == 0 else rng.sample(mine, len(mine))
        versions.append(account_version(i))
    rng.shuffle(versions)
    sent = [notification(v, f"04l5g0000{k:06d}AAA") for k, v in enumerate(versions)]
    tasks = [notification(task_version(i), f"04l5g0001{i:06d}AAA") for i in range(LEADS // 2)]
    messages = [tasks, *(sent[k : k + 7] for k in range(0, len(sent), 7))]
    again = rng.sample(sent, 5)
    messages[-1] = messages[-1] + again
    return messages


@pytest.fixture
async def salesforce() -> AsyncIterator[FakeSalesforce]:
    """The CRM's API holds the newest version of each record, should ingest read one."""
    async with FakeSalesforce(token=SF_TOKEN) as fake:
        newest = [
            *(lead_version(i, VERSIONS - 1) for i in range(LEADS)),
            *(deal_version(i, VERSIONS - 1) for i in range(DEALS)),
            *(account_version(i) for i in range(DEALS)),
        ]
        for v in newest:
            fake.put(v.sobject, v.record_id, **v.fields, SystemModstamp=sf_time(v.stamp))
        yield fake


async def test_salesforce_notifications_out_of_order_end_on_the_newest_version_once(
    iso: Isolation, salesforce: FakeSalesforce, home: Path
) -> None:
    async with running_stack(
        iso,
        home,
        SALESOPS_SALESFORCE_ORG_IDS=ORG_15,
        SALESOPS_SALESFORCE_API_BASE=salesforce.base_url,
        SALESOPS_SALESFORCE_ACCESS_TOKEN=SF_TOKEN,
        SALESOPS_INGEST_SYNC_INTERVAL_MINUTES="0",
    ) as stack:
        hook = stack.url("ingest") + "/webhooks/salesforce"
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=30) as http:

            async def deliver(body: bytes) -> int:
                resp = await http.post(hook, content=body, headers={"Content-Type": "text/xml"})
                assert b"<Ack>true</Ack>" in resp.content, resp.text
                return resp.status_code

            for message in plan(random.Random(7)):
                body = outbound(*message, org=ORG_18)
                statuses += await asyncio.gather(deliver(body), deliver(body))
        assert {s // 100 for s in statuses} == {2}, statuses

        async with database(iso, "ingest") as conn:

            async def processed() -> bool:
                sql = "SELECT count(*) FROM deliveries WHERE processed_at IS NULL"
                return int(await conn.fetchval(sql)) == 0

            await eventually(processed, within=CATCH_UP_WITHIN)
        await reconcile(iso, stack.urls(), set(), within=CATCH_UP_WITHIN)

    # Nothing lost, nothing doubled: one creation per record, one outcome per deal.
    types = sorted((await published(iso))["salesops.crm.v1"].values())
    counts = {t: types.count(t) for t in set(types)}
    assert counts["lead.created"] == LEADS, counts
    assert counts["account.created"] == DEALS, counts
    assert counts["deal.created"] == DEALS, counts
    assert counts["deal.won"] == len(range(0, DEALS, 2)), counts
    assert counts["deal.lost"] == len(range(1, DEALS, 2)), counts
    assert counts["activity.logged"] == LEADS // 2, counts
    await assert_newest_everywhere(iso)


async def ids(iso: Isolation, kind: str) -> dict[str, Any]:
    """Salesforce record id -> canonical id, from ingest's record state."""
    async with database(iso, "ingest") as conn:
        rows = await conn.fetch(
            "SELECT source_id, id FROM entities WHERE kind = $1 AND source = 'salesforce'", kind
        )
    return {r["source_id"]: r["id"] for r in rows}


async def assert_newest_everywhere(iso: Isolation) -> None:
    leads, deals = await ids(iso, "lead"), await ids(iso, "deal")
    newest_leads = {leads[_lead_id(i)]: lead_version(i, VERSIONS - 1) for i in range(LEADS)}
    newest_deals = {deals[_deal_id(i)]: deal_version(i, VERSIONS - 1) for i in range(DEALS)}
    async with database(iso, "ingest") as conn:
        rows = await conn.fetch(
            "SELECT id, state->>'company' AS company, status FROM entities "
            "WHERE id = ANY($1::uuid[])",
            list(newest_leads),
        )
    assert {r["id"]: (r["company"], r["status"]) for r in rows} == {
        lead: (v.fields["Company"], "live") for lead, v in newest_leads.items()
    }
    async with database(iso, "metrics") as conn:
        # Metrics keeps no company name (personal data); the head count it keeps.
        rows = await conn.fetch("SELECT lead_id, fields->>'employees' AS employees FROM leads")
        assert {r["lead_id"]: r["employees"] for r in rows} == {
            lead: v.fields["NumberOfEmployees"] for lead, v in newest_leads.items()
        }
        rows = await conn.fetch("SELECT deal_id, fields->>'stage' AS stage, outcome FROM deals")
        assert {r["deal_id"]: (r["stage"], r["outcome"]) for r in rows} == {
            deal: _closed(v) for deal, v in newest_deals.items()
        }
        # The tasks that came before their leads name the leads that came after.
        touched = {r[0] for r in await conn.fetch("SELECT lead_id FROM activities")}
        assert touched == {leads[_lead_id(i)] for i in range(LEADS // 2)}
    async with database(iso, "forecast") as conn:
        leads_kept = await conn.fetch("SELECT lead_id, employees FROM leads")
        rows = await conn.fetch("SELECT deal_id, stage, amount, outcome FROM deals")
    assert {r["lead_id"]: str(r["employees"]) for r in leads_kept} == {
        lead: v.fields["NumberOfEmployees"] for lead, v in newest_leads.items()
    }
    assert {r["deal_id"]: (r["stage"], r["outcome"], r["amount"]) for r in rows} == {
        deal: (*_closed(v), Decimal(v.fields["Amount"])) for deal, v in newest_deals.items()
    }


def _closed(v: Version) -> tuple[str, str]:
    won = v.fields["StageName"] == "Closed Won"
    return ("Won", "won") if won else ("Lost", "lost")
