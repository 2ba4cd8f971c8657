"""The CloudEvents binary-mode envelope and the event models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from salesops_common.envelope import Envelope, EnvelopeError, deterministic_event_id
from salesops_common.events import (
    CRM_TOPIC,
    EVENT_TYPES,
    ROUTING_TOPIC,
    UPCASTERS,
    Deal,
    LeadAssigned,
    UnknownEventType,
    parse_data,
)

pytestmark = pytest.mark.unit


def a_deal() -> Deal:
    return Deal(
        id=uuid.uuid4(),
        source="hubspot",
        tenant="33",
        source_id="981",
        amount=Decimal("1200.50"),
        currency="EUR",
        stage="Engaging",
    )


def test_an_envelope_survives_the_round_trip_through_kafka_records() -> None:
    deal = a_deal()
    sent = Envelope.of(
        "deal.created",
        deal,
        source="/ingest/hubspot/33",
        time=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
    )
    received = Envelope.from_record(sent.record_key, sent.value(), sent.headers())
    assert received == sent
    assert received.parsed() == deal
    assert received.topic == CRM_TOPIC
    headers = dict(sent.headers())
    assert headers["ce_type"] == b"io.salesops.deal.created"
    assert headers["ce_subject"] == str(deal.id).encode()
    assert headers["content-type"] == b"application/json"
    assert sent.record_key == str(deal.id).encode()


def test_routing_events_are_keyed_by_the_lead() -> None:
    lead_id = uuid.uuid4()
    assigned = LeadAssigned(
        lead_id=lead_id,
        rep_id=None,
        strategy="fallback_queue",
        reason="no rep",
        assigned_at=datetime.now(UTC),
    )
    envelope = Envelope.of("lead.assigned", assigned, source="/routing")
    assert envelope.topic == ROUTING_TOPIC
    assert envelope.record_key == str(lead_id).encode()


def test_every_architecture_event_type_is_known() -> None:
    expected = {
        "lead.created",
        "lead.updated",
        "lead.merged",
        "lead.converted",
        "lead.disqualified",
        "lead.deleted",
        "account.created",
        "account.updated",
        "account.deleted",
        "deal.created",
        "deal.updated",
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "deal.deleted",
        "activity.logged",
        "rep.created",
        "rep.updated",
        "lead.assigned",
        "lead.reassigned",
        "lead.sla_breached",
        "account.territory_assigned",
        "ruleset.published",
        "forecast.published",
        "lead.scored",
        "deal.scored",
    }
    assert expected <= set(EVENT_TYPES)


def test_records_that_are_not_our_cloudevents_are_refused() -> None:
    good = Envelope.of("deal.created", a_deal(), source="/x")
    with pytest.raises(EnvelopeError, match="missing"):
        Envelope.from_record(None, good.value(), [])
    foreign = [(k, b"com.example.thing") if k == "ce_type" else (k, v) for k, v in good.headers()]
    with pytest.raises(EnvelopeError, match="foreign"):
        Envelope.from_record(None, good.value(), foreign)
    with pytest.raises(EnvelopeError, match="undecodable"):
        Envelope.from_record(None, b"{not json", good.headers())


def test_unknown_fields_are_ignored_and_bad_ones_refused() -> None:
    deal = a_deal()
    data = deal.model_dump(mode="json") | {"added_in_v2": "x"}
    assert parse_data("deal.created", data) == deal
    with pytest.raises(ValidationError):
        parse_data("deal.created", {**data, "amount": "a lot"})
    with pytest.raises(UnknownEventType):
        parse_data("deal.teleported", data)


def test_old_schema_versions_are_upgraded_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def v0_to_v1(payload: dict[str, object]) -> dict[str, object]:
        return {**payload, "stage": payload.pop("phase"), "schema_version": 1}

    monkeypatch.setitem(UPCASTERS, ("deal.updated", 0), v0_to_v1)
    old = {
        **a_deal().model_dump(mode="json", exclude={"stage"}),
        "schema_version": 0,
        "phase": "Won",
    }
    upgraded = parse_data("deal.updated", old)
    assert isinstance(upgraded, Deal)
    assert upgraded.stage == "Won"


def test_the_same_fact_always_gets_the_same_id() -> None:
    assert deterministic_event_id("hubspot", "33", "e1") == deterministic_event_id(
        "hubspot", "33", "e1"
    )
    assert deterministic_event_id("hubspot", "33", "e1") != deterministic_event_id(
        "hubspot", "34", "e1"
    )
