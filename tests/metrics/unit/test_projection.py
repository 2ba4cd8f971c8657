"""What each event changes in the projections, pure."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, Lead, LeadMerged, WorkingHours
from salesops_metrics.domain.facts import StageEntry
from salesops_metrics.domain.projection import (
    EntityChange,
    Merged,
    combine,
    effects_of,
    jsonable,
    micros,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def crm(type_name: str, data: Lead | Deal | LeadMerged) -> Envelope:
    return Envelope.of(type_name, data, source="/ingest/api/default", time=T0)


def test_a_lead_keeps_what_kpis_read_and_no_personal_data() -> None:
    lead = Lead(
        id=uuid.uuid4(),
        source="hubspot",
        source_id="1",
        email="ann@acme.example",
        first_name="Ann",
        lead_source="Web",
        employees=12,
        created_at=T0,
    )
    [change] = effects_of(crm("lead.created", lead))
    assert isinstance(change, EntityChange)
    assert change.table == "leads"
    assert change.fields == {
        "source": "hubspot",
        "lead_source": "Web",
        "employees": 12,
        "created_at": micros(T0),
        "deleted": False,
        "created_event_at": micros(T0),
    }
    assert change.stamp == micros(T0)


def test_an_update_changes_only_the_fields_it_carries_and_a_null_clears() -> None:
    update = Lead(id=uuid.uuid4(), source="api", source_id="1", lead_source=None)
    [change] = effects_of(crm("lead.updated", update))
    assert isinstance(change, EntityChange)
    assert change.fields == {"source": "api", "lead_source": None}


def test_an_outcome_is_a_field_and_a_stage_entry() -> None:
    won = Deal(id=uuid.uuid4(), source="api", source_id="1", amount=Decimal("10.50"))
    event = crm("deal.won", won)
    change, entry = effects_of(event)
    assert isinstance(change, EntityChange)
    assert isinstance(entry, StageEntry)
    assert change.fields == {
        "source": "api",
        "amount": "10.50",
        "outcome": "won",
        "outcome_at": micros(T0),
    }
    assert (entry.stage, entry.event_id, entry.entered) == ("won", event.id, T0)


def test_a_stage_change_reopens_the_deal() -> None:
    moved = Deal(id=uuid.uuid4(), source="api", source_id="1", stage="Demo")
    change, entry = effects_of(crm("deal.stage_changed", moved))
    assert isinstance(change, EntityChange)
    assert isinstance(entry, StageEntry)
    assert change.fields["outcome"] is None
    assert entry.stage == "Demo"


def test_a_merge_is_a_fact_and_marks_the_merged_record() -> None:
    into = uuid.uuid4()
    gone = LeadMerged(
        id=uuid.uuid4(), source="api", source_id="2", merged_into_id=into, rule="email", score=1
    )
    fact, change = effects_of(crm("lead.merged", gone))
    assert isinstance(fact, Merged)
    assert isinstance(change, EntityChange)
    assert change.fields == {"merged_into_id": str(into)}


def test_an_invalid_payload_raises_so_the_record_is_dead_lettered() -> None:
    broken = Envelope(type="deal.won", source="/x", subject="s", data={"stage": "Won"})
    with pytest.raises(ValidationError):
        effects_of(broken)


def test_a_batch_merges_an_entitys_changes_as_one_by_one_would() -> None:
    deal_id = uuid.uuid4()

    def change(stamp: int, **fields: object) -> EntityChange:
        return EntityChange("deals", deal_id, dict(fields), stamp)

    combined = combine(
        [
            change(5, stage="Demo", amount="10"),
            change(3, stage="Lead", currency="USD"),  # older: only currency is new
            change(5, amount="12"),  # a tie: the later change wins
            change(9, stage=None),
        ]
    )
    assert len(combined) == 1
    assert combined[0].fields == {"stage": None, "amount": "12", "currency": "USD"}
    assert combined[0].stamps == {"stage": 9, "amount": 5, "currency": 3}


def test_jsonable_keeps_plain_json_as_is_and_converts_the_rest() -> None:
    """Plain JSON values pass through untouched (``True`` stays a bool, not 1); times become
    microseconds, dates ISO text, amounts and ids text, models and lists their JSON."""
    for plain in ("Web", "", 7, 2.5, True, False, None):
        assert jsonable(plain) is plain
    some = uuid.uuid4()
    assert jsonable(T0) == micros(T0)
    assert jsonable(date(2026, 6, 1)) == "2026-06-01"
    assert jsonable(Decimal("10.50")) == "10.50"
    assert jsonable(some) == str(some)
    hours = WorkingHours(start="08:00", end="16:00", days=[1, 2])
    assert jsonable(hours) == {"start": "08:00", "end": "16:00", "days": [1, 2]}
    assert jsonable([T0, some, ("x", Decimal("1"))]) == [micros(T0), str(some), ["x", "1"]]
