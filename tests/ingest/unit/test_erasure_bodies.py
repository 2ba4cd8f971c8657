"""Redacting archived deliveries on erasure: only the items naming the erased record, in
JSON and in Salesforce's SOAP, and the result still parses as a delivery of its source."""

from __future__ import annotations

import orjson

from salesops_common.erasure import PersonalValues
from salesops_ingest.connectors.salesforce import parse_outbound
from salesops_ingest.service_layer.erasure import redact_body
from tests.ingest.unit.test_salesforce import (
    LEAD_NOTIFICATION,
    OPPORTUNITY_NOTIFICATION,
    ORG_18,
    outbound,
)

JANE = PersonalValues.of(
    [
        {
            "email": "jane.doe@acme.example",
            "first_name": "Jane",
            "last_name": "Doe",
            "company": "Acme GmbH",
        }
    ]
)
LEAD_ID = frozenset({"00Q5g00000Lz1AbEAJ"})


def test_a_salesforce_outbound_message_loses_the_lead_values_and_keeps_the_rest() -> None:
    body = outbound(LEAD_NOTIFICATION, OPPORTUNITY_NOTIFICATION)
    redacted = redact_body(body, JANE, LEAD_ID)
    assert redacted is not None
    for value in (b"Jane", b"Doe", b"Acme GmbH"):
        assert value not in redacted
    lead, deal = parse_outbound(redacted, [ORG_18]).notifications
    assert lead.fields["Email"] is None
    assert lead.fields["OwnerId"] == "0055g00000ABCDeAAG"
    assert deal.fields["Name"] == "Acme - 500 seats"
    assert redact_body(body, JANE, frozenset({"00Q000000000000AAA"})) is None  # not named


def test_a_json_batch_loses_the_values_only_in_the_items_of_the_record() -> None:
    events = [
        {"objectId": 101, "propertyName": "email", "propertyValue": "Jane.Doe@Acme.example"},
        {"objectId": 102, "propertyName": "email", "propertyValue": "Jane.Doe@Acme.example"},
    ]
    redacted = redact_body(orjson.dumps(events), JANE, frozenset({"101"}))
    assert redacted is not None
    first, second = orjson.loads(redacted)
    assert first == {**events[0], "propertyValue": None}
    assert second == events[1]


def test_a_body_that_is_neither_json_nor_xml_is_left_alone() -> None:
    assert redact_body(b"name,email\nJane,jane.doe@acme.example\n", JANE, LEAD_ID) is None
