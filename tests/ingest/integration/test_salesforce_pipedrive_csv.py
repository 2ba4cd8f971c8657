"""Salesforce, Pipedrive, CSV imports and replays through the real entrypoints, the real
PostgreSQL and the real broker (the CRMs' APIs are local stand-in servers)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from salesops_common.envelope import Envelope
from salesops_common.events import LeadAssigned
from tests.ingest.fakes.salesforce_api import FakeSalesforce, sf_time
from tests.ingest.integration.crm_support import count, crm_events, ingest_app, of_type, settle
from tests.ingest.unit.test_salesforce import (
    LEAD_NOTIFICATION,
    OPPORTUNITY_NOTIFICATION,
    ORG_15,
    ORG_18,
    outbound,
)
from tests.support import AUTH, Isolation, eventually, publish

pytestmark = pytest.mark.integration

SF_TOKEN = "sf-api-token"
PD_USER, PD_PASSWORD = "pipedrive-hook", "s3cret-basic"
COMPANY = 7766


@pytest.fixture
async def sf() -> AsyncIterator[FakeSalesforce]:
    async with FakeSalesforce(token=SF_TOKEN) as fake:
        yield fake


@pytest.fixture
async def ingest(iso: Isolation, sf: FakeSalesforce) -> AsyncIterator[httpx.AsyncClient]:
    """Without its writeback consumer, for the tests that put nothing on routing's topic."""
    async with salesforce_ingest(iso, sf, consumers=False) as client:
        yield client


@pytest.fixture
async def writing_back(iso: Isolation, sf: FakeSalesforce) -> AsyncIterator[httpx.AsyncClient]:
    async with salesforce_ingest(iso, sf, consumers=True) as client:
        yield client


def salesforce_ingest(
    iso: Isolation, sf: FakeSalesforce, *, consumers: bool
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return ingest_app(
        iso,
        consumers=consumers,
        salesforce_org_ids=ORG_15,
        salesforce_api_base=sf.base_url,
        salesforce_access_token=SF_TOKEN,
        pipedrive_user=PD_USER,
        pipedrive_password=PD_PASSWORD,
    )


async def processed(iso: Isolation, deliveries: int) -> bool:
    sql = "SELECT count(*) FROM deliveries WHERE processed_at IS NOT NULL"
    return await count(iso, sql) >= deliveries


async def nothing_pending(iso: Isolation) -> bool:
    return await count(iso, "SELECT count(*) FROM deliveries WHERE processed_at IS NULL") == 0


# -- Salesforce ------------------------------------------------------------------------------


async def test_outbound_messages_are_acked_after_commit_and_retries_change_nothing(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    body = outbound(LEAD_NOTIFICATION, OPPORTUNITY_NOTIFICATION, org=ORG_18)
    for _ in range(2):  # Salesforce retries until it gets the Ack
        answer = await ingest.post(
            "/webhooks/salesforce", content=body, headers={"Content-Type": "text/xml"}
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
        assert b"<Ack>true</Ack>" in answer.content
    events = await crm_events(
        iso, until=lambda ev: of_type(ev, "lead.created") and of_type(ev, "deal.won")
    )
    lead = of_type(events, "lead.created")[0]
    assert lead.data["email"] == "jane.doe@acme.example"
    assert lead.data["tenant"] == ORG_15
    assert of_type(events, "deal.created")[0].data["amount"] == "125000.0"
    await eventually(lambda: processed(iso, 2))
    await settle(iso)
    events = await crm_events(iso, until=lambda ev: len(ev) >= len(events), settle=True)
    assert len(of_type(events, "lead.created")) == 1
    assert len(of_type(events, "deal.created")) == 1


async def test_unknown_organizations_and_malformed_xml_store_nothing(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    other_org = outbound(LEAD_NOTIFICATION, org="00D000000000001AAA")
    answer = await ingest.post("/webhooks/salesforce", content=other_org)
    assert answer.status_code == 401
    broken = await ingest.post("/webhooks/salesforce", content=b"<soapenv:Envelope><open>")
    assert broken.status_code == 400
    assert broken.json()["error"]["message"]
    assert await count(iso, "SELECT count(*) FROM deliveries") == 0


def cdc(change_type: str, entity: str, ids: list[str], **fields: object) -> dict[str, object]:
    return {
        "organizationId": ORG_18,
        "schema": "abc",
        "payload": {
            "ChangeEventHeader": {
                "entityName": entity,
                "recordIds": ids,
                "changeType": change_type,
                "changeOrigin": "com/salesforce/api/soap/60.0;client=Workbench",
                "transactionKey": uuid.uuid4().hex,
                "sequenceNumber": 1,
                "commitTimestamp": int(datetime.now(UTC).timestamp() * 1000),
                "commitUser": "0055g00000ABCDeAAG",
                "changedFields": list(fields),
            },
            **fields,
        },
        "event": {"replayId": 1001},
    }


async def test_cdc_fans_out_record_ids_and_gap_events_are_read_again(
    ingest: httpx.AsyncClient, sf: FakeSalesforce, iso: Isolation
) -> None:
    create = cdc(
        "CREATE",
        "Lead",
        ["00Q5g00000Twn01AAA", "00Q5g00000Twn02AAA"],
        LastName="Twin",
        Company="Twins Ltd",
    )
    unauthenticated = await ingest.post("/webhooks/salesforce/events", json=[create])
    assert unauthenticated.status_code == 401
    answer = await ingest.post("/webhooks/salesforce/events", json=[create], headers=AUTH)
    assert answer.status_code == 202
    events = await crm_events(iso, until=lambda ev: len(of_type(ev, "lead.created")) >= 2)
    assert {e.data["source_id"] for e in of_type(events, "lead.created")} == {
        "00Q5g00000Twn01AAA",
        "00Q5g00000Twn02AAA",
    }

    sf.put(
        "Lead",
        "00Q5g00000Twn01AAA",
        LastName="Twin",
        Company="Renamed Ltd",
        Email="twin1@twins.example",
        SystemModstamp=sf_time(datetime.now(UTC) + timedelta(seconds=1)),
    )
    gap = cdc("GAP_UPDATE", "Lead", ["00Q5g00000Twn01AAA"])
    await ingest.post("/webhooks/salesforce/events", json=gap, headers=AUTH)
    events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.updated"))
    update = of_type(events, "lead.updated")[0]
    assert update.data["company"] == "Renamed Ltd"
    assert sf.paths()


async def test_a_salesforce_lead_gets_its_owner_written_back(
    writing_back: httpx.AsyncClient, sf: FakeSalesforce, iso: Isolation
) -> None:
    user = outbound(
        """
   <Notification>
    <Id>04l5g0000000USRAAV</Id>
    <sObject xsi:type="sf:User" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0055g00000REP01AAG</sf:Id>
     <sf:Email>rep.one@acme.example</sf:Email>
     <sf:Name>Rep One</sf:Name>
     <sf:IsActive>true</sf:IsActive>
    </sObject>
   </Notification>""",
        LEAD_NOTIFICATION,
    )
    await writing_back.post("/webhooks/salesforce", content=user)
    sf.put("Lead", "00Q5g00000Lz1AbEAJ", LastName="Doe")
    events = await crm_events(
        iso, until=lambda ev: of_type(ev, "lead.created") and of_type(ev, "rep.created")
    )
    lead = of_type(events, "lead.created")[0]
    rep = of_type(events, "rep.created")[0]
    decision = Envelope.of(
        "lead.assigned",
        LeadAssigned(
            lead_id=lead.data["id"],
            rep_id=rep.data["id"],
            strategy="round_robin",
            reason="test",
            assigned_at=datetime.now(UTC),
        ),
        source="/routing",
    )
    await publish(iso.bootstrap, iso.topic("salesops.routing.v1"), [decision])

    async def owner_written() -> bool:
        return sf.records[("Lead", "00Q5g00000Lz1AbEAJ")].get("OwnerId") == "0055g00000REP01AAG"

    await eventually(owner_written, within=60)


# -- Pipedrive -------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def pd_event(
    entity: str, action: str, entity_id: int, data: dict[str, object], ts: object
) -> bytes:
    return orjson.dumps(
        {
            "meta": {
                "id": str(uuid.uuid4()),
                "action": action,
                "entity": entity,
                "entity_id": str(entity_id),
                "company_id": str(COMPANY),
                "timestamp": ts,
                "change_source": "app",
                "attempt": 1,
                "version": "2.0",
            },
            "data": data,
            "previous": None,
        }
    )


async def test_pipedrive_webhooks_need_basic_auth_and_accept_both_timestamp_forms(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    person = pd_event(
        "person",
        "create",
        42,
        {
            "id": 42,
            "first_name": "Jane",
            "last_name": "Doe",
            "emails": [{"value": "Jane@Pipe.example", "primary": True}],
            "owner_id": 7,
        },
        "2026-11-01T10:15:30.123Z",
    )
    bad = await ingest.post("/webhooks/pipedrive", content=person, headers=basic(PD_USER, "no"))
    assert bad.status_code == 401
    assert await count(iso, "SELECT count(*) FROM deliveries") == 0
    ok = await ingest.post(
        "/webhooks/pipedrive", content=person, headers=basic(PD_USER, PD_PASSWORD)
    )
    assert ok.status_code == 200

    user = pd_event(
        "user",
        "create",
        7,
        {"id": 7, "name": "Pat Seller", "email": "pat@pipe.example", "active_flag": True},
        1_764_000_000,
    )
    ok = await ingest.post("/webhooks/pipedrive", content=user, headers=basic(PD_USER, PD_PASSWORD))
    assert ok.status_code == 200
    events = await crm_events(
        iso, until=lambda ev: of_type(ev, "lead.created") and of_type(ev, "rep.created")
    )
    lead = of_type(events, "lead.created")[0]
    rep = of_type(events, "rep.created")[0]
    assert lead.data["email"] == "jane@pipe.example"
    assert lead.data["owner_id"] == rep.data["id"]
    malformed = await ingest.post(
        "/webhooks/pipedrive", content=b"{]", headers=basic(PD_USER, PD_PASSWORD)
    )
    assert malformed.status_code == 400


# -- CSV imports and replays -----------------------------------------------------------------

CSV = (
    "Lead ID,First Name,Last Name,E-mail,Phone,Country,Company\r\n"
    "L-1,ada,LOVELACE,Ada@Engines.example,+44 20 7946 0958,United Kingdom,Engines Ltd\r\n"
    ",No,Id,no-id@x.example,,,\r\n"
    "L-2,Charles,Babbage,charles@engines.example,,UK,Engines Ltd\r\n"
    "L-3,Ada,Lovelace,ADA@ENGINES.EXAMPLE,,,Engines Ltd\r\n"
    'L-4,"Grace ""Amazing""",Hopper,grace@navy.example,,US,"Navy, US"\r\n'
    "L-5,Bad,Employees,bad@x.example,,,X\r\n"
)


async def test_a_csv_import_streams_rows_with_a_report_and_a_second_import_changes_nothing(
    ingest: httpx.AsyncClient, iso: Isolation
) -> None:
    body = CSV.replace(",X\r\n", ",X\r\n").encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 17):
            yield body[i : i + 17]

    answer = await ingest.post(
        "/v1/imports",
        params={"kind": "lead"},
        content=chunks(),
        headers={**AUTH, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["rows"] == 6
    assert report["accepted"] == 4
    assert report["merged"] == 1  # L-3 is Ada again
    assert [e["row"] for e in report["errors"]] == [2]
    events = await crm_events(
        iso, until=lambda ev: len(of_type(ev, "lead.created")) >= 4 and of_type(ev, "lead.merged")
    )
    ada = next(e for e in of_type(events, "lead.created") if e.data["source_id"] == "L-1")
    assert ada.data["first_name"] == "Ada"
    assert ada.data["last_name"] == "Lovelace"
    assert ada.data["phone"] == "+442079460958"
    assert ada.data["country"] == "GB"
    merged = of_type(events, "lead.merged")[0]
    assert merged.data["merged_into_id"] == ada.data["id"]

    again = await ingest.post(
        "/v1/imports",
        params={"kind": "lead"},
        content=body,
        headers={**AUTH, "Content-Type": "text/csv"},
    )
    assert again.json()["accepted"] == 0
    assert again.json()["unchanged"] + again.json()["merged"] == 5
    await settle(iso)
    after = await crm_events(iso, until=lambda ev: len(ev) >= len(events), settle=True)
    assert len(after) == len(events)

    no_id = await ingest.post(
        "/v1/imports", params={"kind": "lead"}, content=b"name,email\r\nx,y\r\n", headers=AUTH
    )
    assert no_id.status_code == 422


async def test_a_replay_after_a_mapping_fix_publishes_only_what_changed(
    iso: Isolation, sf: FakeSalesforce, tmp_path: object
) -> None:
    from pathlib import Path

    from salesops_ingest.domain import mapping

    settings = {
        "salesforce_org_ids": ORG_15,
        "salesforce_api_base": sf.base_url,
        "salesforce_access_token": SF_TOKEN,
    }
    override = Path(str(tmp_path))
    shipped = (mapping.SHIPPED / "salesforce.yaml").read_text()
    # A broken mapping: the lead's company lands nowhere.
    (override / "salesforce.yaml").write_text(shipped.replace("Company: company", "Company: ''"))
    mapping.load_mappings.cache_clear()
    started = datetime.now(UTC) - timedelta(seconds=5)
    async with ingest_app(iso, consumers=False, mappings_dir=str(override), **settings) as ingest:
        await ingest.post("/webhooks/salesforce", content=outbound(LEAD_NOTIFICATION))
        events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.created"))
        assert "company" not in of_type(events, "lead.created")[0].data

    (override / "salesforce.yaml").write_text(shipped)
    mapping.load_mappings.cache_clear()
    async with ingest_app(iso, consumers=False, mappings_dir=str(override), **settings) as ingest:
        replay = await ingest.post("/v1/replays", json={"since": started.isoformat()}, headers=AUTH)
        assert replay.status_code == 202
        assert replay.json()["deliveries"] == 1
        events = await crm_events(iso, until=lambda ev: of_type(ev, "lead.updated"))
        update = of_type(events, "lead.updated")[0]
        assert update.data["company"] == "Acme GmbH"
        assert set(update.data) - {"schema_version", "id", "source", "tenant", "source_id"} == {
            "company"
        }
        # A second replay finds nothing new to say.
        await ingest.post("/v1/replays", json={"since": started.isoformat()}, headers=AUTH)
        await eventually(lambda: nothing_pending(iso))
        await settle(iso)
        after = await crm_events(iso, until=lambda ev: len(ev) >= len(events), settle=True)
        # Distinct events: a relay stopped between publishing and marking a row sent publishes
        # it again after the restart (at least once; consumers drop the repeat by its id).
        assert len({e.id for e in of_type(after, "lead.updated")}) == 1
        assert len({e.id for e in of_type(after, "lead.created")}) == 1
    mapping.load_mappings.cache_clear()


async def test_a_pipedrive_person_gets_its_owner_written_back(iso: Isolation) -> None:
    from tests.ingest.fakes.pipedrive_api import FakePipedrive

    async with (
        FakePipedrive(token="pd-api") as pd,
        ingest_app(
            iso,
            pipedrive_user=PD_USER,
            pipedrive_password=PD_PASSWORD,
            pipedrive_api_base=pd.base_url,
            pipedrive_api_token="pd-api",
        ) as ingest,
    ):
        pd.put("person", 77, name="Kim Lee", owner_id=1)
        pd.put("user", 9, name="Sam Seller", email="sam@pipe.example")
        headers = basic(PD_USER, PD_PASSWORD)
        person = pd_event(
            "person",
            "create",
            77,
            {"id": 77, "name": "Kim Lee", "owner_id": 1},
            "2026-11-01T10:00:00Z",
        )
        user = pd_event(
            "user",
            "create",
            9,
            {"id": 9, "name": "Sam Seller", "email": "sam@pipe.example"},
            1_764_000_000,
        )
        for body in (person, user):
            assert (
                await ingest.post("/webhooks/pipedrive", content=body, headers=headers)
            ).status_code == 200
        events = await crm_events(
            iso,
            until=lambda ev: (
                of_type(ev, "lead.created")
                and any(
                    e.data.get("email") == "sam@pipe.example" for e in of_type(ev, "rep.created")
                )
            ),
        )
        lead = of_type(events, "lead.created")[0]
        sam = next(
            e for e in of_type(events, "rep.created") if e.data.get("email") == "sam@pipe.example"
        )
        decision = Envelope.of(
            "lead.assigned",
            LeadAssigned(
                lead_id=lead.data["id"],
                rep_id=sam.data["id"],
                strategy="round_robin",
                reason="test",
                assigned_at=datetime.now(UTC),
            ),
            source="/routing",
        )
        await publish(iso.bootstrap, iso.topic("salesops.routing.v1"), [decision])

        async def done() -> list[dict[str, object]]:
            listing = await ingest.get(
                "/v1/writebacks", params={"lead_id": lead.data["id"]}, headers=AUTH
            )
            items: list[dict[str, object]] = listing.json()["items"]
            return [i for i in items if i["status"] != "pending"]

        finished = await eventually(done, within=60)
        assert finished[0]["status"] == "done", finished[0]["detail"]
        assert pd.records[("person", "77")]["owner_id"] == 9
