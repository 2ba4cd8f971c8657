"""Salesforce connector: Outbound Messages, forwarded CDC messages, and the REST API adapter
against a local Salesforce (tests/ingest/fakes/salesforce_api.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import orjson
import pytest
from defusedxml.ElementTree import fromstring

from salesops_common.http import ApiError
from salesops_ingest.connectors import salesforce
from salesops_ingest.connectors.salesforce import (
    ACK_RESPONSE,
    SalesforceApi,
    check_cdc,
    parse_outbound,
    records_from_cdc,
    records_from_outbound,
)
from salesops_ingest.domain.mapping import load_mappings
from salesops_ingest.domain.records import CrmApiError, DeadItem, SourceRecord
from tests.ingest.fakes.salesforce_api import FakeSalesforce

pytestmark = pytest.mark.unit

ORG_18 = "00D5g000004Sa1bEAC"
ORG_15 = "00D5g000004Sa1b"
TOKEN = "sf-test-token"

ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5g000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/{org}</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/{org}</PartnerUrl>
   {notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"""

LEAD_NOTIFICATION = """
   <Notification>
    <Id>04l5g00000AbCdEAAV</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5g00000Lz1AbEAJ</sf:Id>
     <sf:Company>Acme GmbH</sf:Company>
     <sf:Email>Jane.Doe@Acme.example</sf:Email>
     <sf:FirstName>Jane</sf:FirstName>
     <sf:LastModifiedDate>2024-05-01T10:15:30.000Z</sf:LastModifiedDate>
     <sf:LastName>Doe</sf:LastName>
     <sf:OwnerId>0055g00000ABCDeAAG</sf:OwnerId>
     <sf:Phone xsi:nil="true"/>
    </sObject>
   </Notification>"""

OPPORTUNITY_NOTIFICATION = """
   <Notification>
    <Id>04l5g00000AbCeFAAV</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0065g00000Qw3XyAAJ</sf:Id>
     <sf:AccountId>0015g00000Zz9AaAAJ</sf:AccountId>
     <sf:Amount>125000.0</sf:Amount>
     <sf:CloseDate>2024-06-30</sf:CloseDate>
     <sf:Name>Acme - 500 seats</sf:Name>
     <sf:OwnerId>0055g00000ABCDeAAG</sf:OwnerId>
     <sf:StageName>Closed Won</sf:StageName>
     <sf:SystemModstamp>2024-05-01T10:16:00.000Z</sf:SystemModstamp>
    </sObject>
   </Notification>"""


def outbound(*notifications: str, org: str = ORG_18) -> bytes:
    return ENVELOPE.format(org=org, notifications="".join(notifications)).encode()


def numbered_notifications(count: int) -> list[str]:
    return [
        LEAD_NOTIFICATION.replace("04l5g00000AbCdEAAV", f"04l5g00000{i:05d}AAV")
        for i in range(count)
    ]


# --------------------------------------------------------------------------------------------
# Outbound Messages
# --------------------------------------------------------------------------------------------


def test_an_outbound_message_lists_its_notifications_with_their_fields() -> None:
    message = parse_outbound(outbound(LEAD_NOTIFICATION, OPPORTUNITY_NOTIFICATION), [ORG_18])

    assert message.organization_id == ORG_18
    assert message.action_id == "04k5g000000XyZaAAK"
    lead, deal = message.notifications
    assert (lead.id, lead.sobject_type) == ("04l5g00000AbCdEAAV", "Lead")
    assert lead.fields["Email"] == "Jane.Doe@Acme.example"
    assert lead.fields["Phone"] is None  # xsi:nil="true"
    assert (deal.sobject_type, deal.fields["StageName"]) == ("Opportunity", "Closed Won")


def test_each_notification_becomes_an_update_of_its_record() -> None:
    body = outbound(LEAD_NOTIFICATION, OPPORTUNITY_NOTIFICATION)

    lead, deal = records_from_outbound(body)

    assert isinstance(lead, SourceRecord)
    assert isinstance(deal, SourceRecord)
    assert (lead.source, lead.tenant, lead.action) == ("salesforce", ORG_15, "update")
    assert (lead.object_type, lead.source_id) == ("Lead", "00Q5g00000Lz1AbEAJ")
    assert lead.delivery_key == f"sfom:{ORG_15}:04l5g00000AbCdEAAV"
    assert lead.occurred_at == datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)
    assert lead.properties["Phone"] is None
    assert lead.properties["OwnerId"].startswith("005")
    assert lead.origin is None
    assert (deal.object_type, deal.source_id) == ("Opportunity", "0065g00000Qw3XyAAJ")
    assert deal.occurred_at == datetime(2024, 5, 1, 10, 16, tzinfo=UTC)  # SystemModstamp
    assert [lead.sequence, deal.sequence] == [0, 1]


def test_the_shipped_mapping_reads_outbound_records() -> None:
    mapping = load_mappings()["salesforce"]
    lead, deal = records_from_outbound(outbound(LEAD_NOTIFICATION, OPPORTUNITY_NOTIFICATION))
    assert isinstance(lead, SourceRecord)
    assert isinstance(deal, SourceRecord)

    mapped_lead = mapping.apply(lead)
    mapped_deal = mapping.apply(deal)

    assert mapped_lead.kind == "lead"
    assert mapped_lead.fields["last_name"] == "Doe"
    assert mapped_lead.fields["owner_source_id"] == "0055g00000ABCDeAAG"
    assert mapped_lead.fields["phone"] is None
    assert (mapped_deal.kind, mapped_deal.fields["stage"], mapped_deal.outcome) == (
        "deal",
        "Won",
        "won",
    )
    assert mapped_deal.fields["account_source_id"] == "0015g00000Zz9AaAAJ"


@pytest.mark.parametrize(
    ("allowed", "sent"), [(ORG_15, ORG_18), (ORG_18, ORG_15), (ORG_18, ORG_18), (ORG_15, ORG_15)]
)
def test_15_and_18_character_org_ids_are_the_same_org(allowed: str, sent: str) -> None:
    body = outbound(LEAD_NOTIFICATION, org=sent)

    parse_outbound(body, [allowed])

    (record,) = records_from_outbound(body)
    assert isinstance(record, SourceRecord)
    assert record.tenant == ORG_15


@pytest.mark.parametrize(
    "allowed", [["00D5g000009ZzZzEAK"], [ORG_15.lower()], [], ["", "  "]], ids=str
)
def test_an_org_outside_the_allowlist_is_refused(allowed: list[str]) -> None:
    with pytest.raises(ApiError) as caught:
        parse_outbound(outbound(LEAD_NOTIFICATION), allowed)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "body",
    [
        b"<soapenv:Envelope><unclosed>",
        b"not xml at all",
        b"",
        b'<?xml version="1.0"?><Envelope><Body/></Envelope>',
        outbound().replace(b"notifications", b"somethingElse"),
        outbound("<Notification><Id>04l5g00000AbCdEAAV</Id></Notification>"),
    ],
    ids=["unclosed", "text", "empty", "no-notifications", "other-element", "no-sobject"],
)
def test_malformed_or_foreign_xml_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_outbound(body, [ORG_18])
    assert caught.value.status == 400


def test_a_billion_laughs_body_is_refused_at_once() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    body = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>'.encode()
    started = time.perf_counter()

    with pytest.raises(ApiError) as caught:
        parse_outbound(body, [ORG_18])

    assert caught.value.status == 400
    assert time.perf_counter() - started < 1.0


def test_an_external_entity_is_refused() -> None:
    body = outbound(LEAD_NOTIFICATION).replace(
        b'<?xml version="1.0" encoding="UTF-8"?>',
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    )
    with pytest.raises(ApiError) as caught:
        parse_outbound(body, [ORG_18])
    assert caught.value.status == 400


def test_more_than_100_notifications_are_too_large() -> None:
    parse_outbound(outbound(*numbered_notifications(100)), [ORG_18])

    with pytest.raises(ApiError) as caught:
        parse_outbound(outbound(*numbered_notifications(101)), [ORG_18])

    assert caught.value.status == 413


def test_the_ack_is_a_soap_envelope_saying_true() -> None:
    root = fromstring(ACK_RESPONSE, forbid_dtd=True)

    ack = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body"
        "/{http://soap.sforce.com/2005/09/outbound}notificationsResponse"
        "/{http://soap.sforce.com/2005/09/outbound}Ack"
    )

    assert ack is not None
    assert ack.text == "true"
    assert salesforce.ACK_CONTENT_TYPE.startswith("text/xml")


def test_an_unknown_sobject_type_is_a_dead_item_and_the_rest_still_count() -> None:
    campaign = LEAD_NOTIFICATION.replace("sf:Lead", "sf:Campaign").replace(
        "04l5g00000AbCdEAAV", "04l5g00000CampAAAV"
    )

    dead, deal = records_from_outbound(outbound(campaign, OPPORTUNITY_NOTIFICATION))

    assert isinstance(dead, DeadItem)
    assert "Campaign" in dead.reason
    assert dead.delivery_key == f"sfom:{ORG_15}:04l5g00000CampAAAV"
    assert isinstance(deal, SourceRecord)


def test_a_task_names_a_deal_only_through_an_opportunity_id() -> None:
    def task(notification_id: str, what_id: str) -> str:
        return f"""
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:Task" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00T5g00000{notification_id[-8:]}</sf:Id>
     <sf:Subject>Call Jane</sf:Subject>
     <sf:TaskSubtype>Call</sf:TaskSubtype>
     <sf:WhatId>{what_id}</sf:WhatId>
     <sf:WhoId>00Q5g00000Lz1AbEAJ</sf:WhoId>
    </sObject>
   </Notification>"""

    on_deal, on_account = records_from_outbound(
        outbound(
            task("04l5g0000000001AAA", "0065g00000Qw3XyAAJ"),
            task("04l5g0000000002AAA", "0015g00000Zz9AaAAJ"),
        )
    )

    assert isinstance(on_deal, SourceRecord)
    assert isinstance(on_account, SourceRecord)
    assert on_deal.properties["WhatId"] == "0065g00000Qw3XyAAJ"
    assert on_account.properties["WhatId"] is None
    mapped = load_mappings()["salesforce"].apply(on_deal)
    assert (mapped.kind, mapped.fields["type"]) == ("activity", "call")
    assert mapped.fields["deal_source_id"] == "0065g00000Qw3XyAAJ"


# --------------------------------------------------------------------------------------------
# Change Data Capture
# --------------------------------------------------------------------------------------------


def cdc(
    change_type: str,
    record_ids: list[str],
    *,
    entity: str = "Lead",
    sequence: int = 1,
    transaction: str | None = "0002343d-9d90-e395-ed20-cf416ba652ad",
    replay: int = 21405,
    fields: Mapping[str, object] | None = None,
    changed: list[str] | None = None,
    org: str | None = ORG_18,
) -> dict[str, object]:
    header: dict[str, object] = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change_type,
        "changeOrigin": "com/salesforce/api/rest/60.0;client=salesops",
        "sequenceNumber": sequence,
        "commitTimestamp": 1714558530000,
        "commitNumber": 10769920466,
        "commitUser": "0055g00000ABCDeAAG",
        "nulledFields": [],
        "diffFields": [],
        "changedFields": changed or [],
    }
    if transaction is not None:
        header["transactionKey"] = transaction
    message: dict[str, object] = {
        "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
        "payload": {"ChangeEventHeader": header, **(fields or {})},
        "event": {"replayId": replay},
    }
    if org is not None:
        message["organizationId"] = org
    return message


def body_of(*messages: Mapping[str, object]) -> bytes:
    return orjson.dumps(list(messages))


def test_an_update_of_several_records_fans_out_with_only_the_changed_fields() -> None:
    update = cdc(
        "UPDATE",
        ["00Q5g00000Lz1AbEAJ", "00Q5g00000Lz1AcEAJ"],
        fields={
            "Name": {"FirstName": None, "LastName": "Doe-Smith", "Salutation": None},
            "Status": "Working - Contacted",
            "Phone": None,
            "Company": None,
            "LastModifiedDate": "2024-05-01T10:15:30.000Z",
        },
        changed=["Name.LastName", "Status", "Phone", "LastModifiedDate"],
    )

    first, second = records_from_cdc(body_of(update))

    assert isinstance(first, SourceRecord)
    assert isinstance(second, SourceRecord)
    assert [first.source_id, second.source_id] == ["00Q5g00000Lz1AbEAJ", "00Q5g00000Lz1AcEAJ"]
    assert first.action == second.action == "update"
    assert first.properties == {
        "LastName": "Doe-Smith",
        "Status": "Working - Contacted",
        "Phone": None,  # cleared
        "LastModifiedDate": "2024-05-01T10:15:30.000Z",
    }
    assert first.tenant == ORG_15
    assert first.occurred_at == datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)
    assert first.origin == "com/salesforce/api/rest/60.0;client=salesops"
    assert first.delivery_key == (
        f"sfcdc:{ORG_15}:0002343d-9d90-e395-ed20-cf416ba652ad:1:00Q5g00000Lz1AbEAJ"
    )
    assert first.delivery_key != second.delivery_key


def test_a_creation_carries_its_fields_with_compound_fields_flattened() -> None:
    create = cdc(
        "CREATE",
        ["0015g00000Zz9AaAAJ"],
        entity="Account",
        fields={
            "Name": "Acme",
            "BillingAddress": {"City": "Berlin", "Country": "DE", "PostalCode": "10115"},
            "Website": None,
        },
    )

    (record,) = records_from_cdc(orjson.dumps(create))  # one message, not an array

    assert isinstance(record, SourceRecord)
    assert record.action == "create"
    assert record.properties == {
        "Name": "Acme",
        "BillingCity": "Berlin",
        "BillingCountry": "DE",
        "BillingPostalCode": "10115",
        "Website": None,
    }
    mapped = load_mappings()["salesforce"].apply(record)
    assert (mapped.fields["name"], mapped.fields["country"]) == ("Acme", "DE")


@pytest.mark.parametrize(
    "change_type", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]
)
def test_gap_events_ask_for_a_reread_and_carry_nothing(change_type: str) -> None:
    (record,) = records_from_cdc(
        body_of(cdc(change_type, ["00Q5g00000Lz1AbEAJ"], fields={"Status": None}))
    )

    assert isinstance(record, SourceRecord)
    assert (record.action, record.needs_reread, dict(record.properties)) == ("fetch", True, {})


def test_deletions_and_undeletions() -> None:
    deleted, undeleted = records_from_cdc(
        body_of(
            cdc("DELETE", ["00Q5g00000Lz1AbEAJ"], sequence=1),
            cdc("UNDELETE", ["00Q5g00000Lz1AbEAJ"], sequence=2),
        )
    )

    assert isinstance(deleted, SourceRecord)
    assert isinstance(undeleted, SourceRecord)
    assert (deleted.action, dict(deleted.properties)) == ("delete", {})
    assert (undeleted.action, undeleted.needs_reread) == ("fetch", False)


def test_delivery_keys_are_stable_and_fall_back_to_the_replay_id() -> None:
    body = body_of(
        cdc("UPDATE", ["00Q5g00000Lz1AbEAJ"], fields={"Status": "Open"}, changed=["Status"]),
        cdc("UPDATE", ["00Q5g00000Lz1AbEAJ"], transaction=None, replay=99, org=None),
    )

    first_read = [r.delivery_key for r in records_from_cdc(body)]
    second_read = [r.delivery_key for r in records_from_cdc(body)]

    assert first_read == second_read
    assert first_read[1] == "sfcdc:default:replay-99:1:00Q5g00000Lz1AbEAJ"


def test_a_cdc_message_belongs_to_the_org_it_names_as_outbound_messages_do() -> None:
    named_18 = cdc("CREATE", ["00Q5g00000Lz1AbEAJ"], org=ORG_18)
    named_15 = cdc("CREATE", ["00Q5g00000Lz1AbEAJ"], org=None) | {"org_id": ORG_15}
    unnamed = cdc("CREATE", ["00Q5g00000Lz1AbEAJ"], org=None)

    found = list(records_from_cdc(body_of(named_18, named_15, unnamed)))

    tenants = [r.tenant for r in found if isinstance(r, SourceRecord)]

    assert tenants == [ORG_15, ORG_15, "default"]


def test_the_changes_of_a_transaction_keep_their_order() -> None:
    messages = [
        cdc("UPDATE", ["006A00000000001AAA"], entity="Opportunity", sequence=n, fields=f, changed=c)
        for n, f, c in [
            (1, {"StageName": "Qualification"}, ["StageName"]),
            (2, {"StageName": "Negotiation/Review"}, ["StageName"]),
            (3, {"StageName": "Closed Won"}, ["StageName"]),
        ]
    ]

    found = list(records_from_cdc(body_of(*messages)))

    assert all(isinstance(r, SourceRecord) for r in found)
    stages = [r.properties["StageName"] for r in found if isinstance(r, SourceRecord)]
    assert stages == ["Qualification", "Negotiation/Review", "Closed Won"]
    assert [r.sequence for r in found if isinstance(r, SourceRecord)] == [1, 2, 3]


def test_platform_events_and_unknown_entities_are_dead_items() -> None:
    platform = {"channel": "/event/Order_Shipped__e", "payload": {"Order__c": "801xx"}}
    campaign = cdc("CREATE", ["7015g000000AbCdAAK"], entity="Campaign")

    dead_platform, dead_campaign = records_from_cdc(body_of(platform, campaign))

    assert isinstance(dead_platform, DeadItem)
    assert "Order_Shipped__e" in dead_platform.reason
    assert isinstance(dead_campaign, DeadItem)
    assert "Campaign" in dead_campaign.reason


def test_check_cdc_accepts_one_message_or_an_array() -> None:
    message = cdc("CREATE", ["00Q5g00000Lz1AbEAJ"])

    assert check_cdc(orjson.dumps(message)) == [message]
    assert len(check_cdc(body_of(message, message))) == 2


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'"text"', b"[]", b"[1, 2]", b'[{"payload": []}]', b'{"event": {}}'],
)
def test_check_cdc_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        check_cdc(body)
    assert caught.value.status == 400


def test_check_cdc_refuses_too_many_messages() -> None:
    message = cdc("CREATE", ["00Q5g00000Lz1AbEAJ"])

    with pytest.raises(ApiError) as caught:
        check_cdc(orjson.dumps([message] * 1001))

    assert caught.value.status == 413


# --------------------------------------------------------------------------------------------
# The REST API, against a local Salesforce
# --------------------------------------------------------------------------------------------


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def sf() -> AsyncIterator[FakeSalesforce]:
    async with FakeSalesforce(TOKEN) as server:
        yield server


FIELDS = {"Lead": ["Email", "LastName", "OwnerId"]}


def api(
    sf: FakeSalesforce, sleeps: Sleeps | None = None, *, query_limit: int = 2000
) -> SalesforceApi:
    return SalesforceApi(
        sf.base_url,
        TOKEN,
        fields=FIELDS,
        query_limit=query_limit,
        backoff_s=0.01,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


async def test_fetch_reads_the_whole_record(sf: FakeSalesforce) -> None:
    sf.put("Lead", "00Q5g00000Lz1AbEAJ", Email="jane@acme.example", LastName="Doe")
    stamp = sf.records[("Lead", "00Q5g00000Lz1AbEAJ")]["SystemModstamp"]

    async with api(sf) as client:
        record = await client.fetch(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ")

    assert record is not None
    assert record.action == "create"
    assert record.properties["Email"] == "jane@acme.example"
    assert "attributes" not in record.properties
    assert record.occurred_at == datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC)
    assert record.delivery_key == f"fetch:Lead:00Q5g00000Lz1AbEAJ:{stamp}"
    (request,) = sf.requests
    assert request.path == "/services/data/v60.0/sobjects/Lead/00Q5g00000Lz1AbEAJ"
    assert request.headers["sforce-call-options"] == "client=salesops"


async def test_fetch_of_a_gone_record_is_none(sf: FakeSalesforce) -> None:
    async with api(sf) as client:
        assert await client.fetch(ORG_15, "Lead", "00Q5g00000Lz1ZzEAJ") is None


async def test_list_changed_pages_through_the_query_and_moves_the_cursor(
    sf: FakeSalesforce,
) -> None:
    sf.page_size = 2
    for n in range(5):
        sf.put("Lead", f"00Q5g00000Lz1A{n}EAJ", Email=f"p{n}@acme.example", LastName=f"P{n}")
    sf.put("Contact", "0035g00000Ab1AbAAJ", Email="not-a-lead@acme.example")

    async with api(sf) as client:
        first, cursor = await client.list_changed(ORG_15, "Lead", None)
        sf.put("Lead", "00Q5g00000Lz1A9EAJ", Email="new@acme.example", LastName="New")
        second, next_cursor = await client.list_changed(ORG_15, "Lead", cursor)
        third, last_cursor = await client.list_changed(ORG_15, "Lead", next_cursor)

    assert [r.properties["LastName"] for r in first] == ["P0", "P1", "P2", "P3", "P4"]
    assert all(r.action == "update" for r in first)
    assert cursor == "2024-05-01T09:00:05Z"
    assert [r.source_id for r in second] == ["00Q5g00000Lz1A9EAJ"]
    assert next_cursor == "2024-05-01T09:00:07Z"
    assert (third, last_cursor) == ([], None)
    queries = [r.query["q"] for r in sf.requests if "q" in r.query]
    assert queries[0] == (
        "SELECT Id, Email, LastName, OwnerId, SystemModstamp FROM Lead "
        "ORDER BY SystemModstamp ASC LIMIT 2000"
    )
    assert "WHERE SystemModstamp > 2024-05-01T09:00:05Z" in queries[1]
    assert len([p for p in sf.paths() if "/query/" in p]) == 2  # nextRecordsUrl followed


async def test_a_full_batch_leaves_its_newest_second_for_the_next_call(sf: FakeSalesforce) -> None:
    for n, stamp in enumerate(["09:00:01", "09:00:02", "09:00:03", "09:00:03", "09:00:03"]):
        sf.put("Lead", f"00Q5g00000Lz1A{n}EAJ", SystemModstamp=f"2024-05-01T{stamp}.000+0000")

    async with api(sf, query_limit=4) as client:
        first, cursor = await client.list_changed(ORG_15, "Lead", None)
        second, _ = await client.list_changed(ORG_15, "Lead", cursor)

    assert [r.source_id[-4] for r in first] == ["0", "1"]
    assert cursor == "2024-05-01T09:00:02Z"
    assert [r.source_id[-4] for r in second] == ["2", "3", "4"]


async def test_list_changed_refuses_a_cursor_that_is_no_datetime(sf: FakeSalesforce) -> None:
    async with api(sf) as client:
        with pytest.raises(CrmApiError) as caught:
            await client.list_changed(ORG_15, "Lead", "2024-01-01T00:00:00Z OR Id != null")
    assert caught.value.retryable is False
    assert sf.requests == []


async def test_set_owner_patches_owner_id(sf: FakeSalesforce) -> None:
    sf.put("Lead", "00Q5g00000Lz1AbEAJ", OwnerId="0055g00000ABCDeAAG")

    async with api(sf) as client:
        await client.set_owner(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ", "0055g00000XYZAbAAG")

    assert sf.records[("Lead", "00Q5g00000Lz1AbEAJ")]["OwnerId"] == "0055g00000XYZAbAAG"
    (request,) = sf.requests
    assert (request.method, request.body) == ("PATCH", {"OwnerId": "0055g00000XYZAbAAG"})


async def test_server_errors_and_throttling_are_retried_with_backoff(sf: FakeSalesforce) -> None:
    sf.put("Lead", "00Q5g00000Lz1AbEAJ", LastName="Doe")
    sf.fail_next(2, 503)
    sf.fail_next(1, 429, retry_after=2)
    sleeps = Sleeps()

    async with api(sf, sleeps) as client:
        record = await client.fetch(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ")

    assert record is not None
    assert sleeps == [0.01, 0.02, 2.0]  # backoff doubles; Retry-After is honoured
    assert len(sf.requests) == 4


async def test_retries_stop_after_four_attempts(sf: FakeSalesforce) -> None:
    sf.fail_next(4, 500)

    async with api(sf) as client:
        with pytest.raises(CrmApiError) as caught:
            await client.set_owner(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ", "0055g00000XYZAbAAG")

    assert (caught.value.retryable, caught.value.status) == (True, 500)
    assert len(sf.requests) == 4


async def test_client_errors_are_not_retried(sf: FakeSalesforce) -> None:
    sf.put("Lead", "00Q5g00000Lz1AbEAJ", OwnerId="0055g00000ABCDeAAG")

    async with api(sf) as client:
        with pytest.raises(CrmApiError) as bad_owner:
            await client.set_owner(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ", "00G5g000001QueueAAA")
    async with SalesforceApi(sf.base_url, "expired", fields=FIELDS) as stale:
        with pytest.raises(CrmApiError) as unauthorized:
            await stale.fetch(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ")

    assert (bad_owner.value.retryable, bad_owner.value.status) == (False, 400)
    assert (unauthorized.value.retryable, unauthorized.value.status) == (False, 401)
    assert len(sf.requests) == 2


async def test_an_unreachable_salesforce_is_a_retryable_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()

    async with SalesforceApi(
        f"http://127.0.0.1:{port}", TOKEN, fields=FIELDS, backoff_s=0.01, sleep=sleeps
    ) as client:
        with pytest.raises(CrmApiError) as caught:
            await client.fetch(ORG_15, "Lead", "00Q5g00000Lz1AbEAJ")

    assert caught.value.retryable is True
    assert caught.value.status is None
    assert len(sleeps) == 3
