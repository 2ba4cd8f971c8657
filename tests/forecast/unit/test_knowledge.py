"""What forecast keeps beside deals: stage entry, accounts, leads, territories, and when a
score is worth publishing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from salesops_common.events import Account, Deal, Lead
from salesops_forecast.domain.pipeline import (
    VersionedRecord,
    account_changes,
    deal_changes,
    lead_changes,
    merge_newer,
    stage_entry,
)
from salesops_forecast.domain.score_changes import to_publish
from salesops_forecast.domain.territories import deal_territory, primary_territories

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _apply(record: VersionedRecord, event: str, deal: Deal, at: datetime) -> VersionedRecord:
    merged = merge_newer(
        record, deal_changes(event, deal, at=at, present=deal.model_fields_set), at=at
    )
    return merge_newer(merged, stage_entry(record, merged, at=at), at=at)


def test_a_deal_enters_a_stage_when_its_stage_changes_and_late_events_do_not_move_it() -> None:
    deal = Deal(id=uuid.uuid4(), source="api", source_id="D1", stage="Discovery")
    record = _apply(VersionedRecord(), "deal.created", deal, T0)
    assert record.values["stage_entered_at"] == T0
    proposal = deal.model_copy(update={"stage": "Proposal"})
    record = _apply(record, "deal.stage_changed", proposal, T0 + timedelta(days=3))
    assert record.values["stage_entered_at"] == T0 + timedelta(days=3)
    # An update that leaves the stage as it is, and a late event from before, change nothing.
    record = _apply(record, "deal.updated", proposal, T0 + timedelta(days=4))
    record = _apply(record, "deal.updated", deal, T0 + timedelta(days=1))
    assert record.values["stage"] == "Proposal"
    assert record.values["stage_entered_at"] == T0 + timedelta(days=3)


def test_accounts_and_leads_keep_attributes_and_lifecycle() -> None:
    account = Account(id=uuid.uuid4(), source="api", source_id="A", industry="Retail")
    assert account_changes("account.created", account, present={"industry"}) == {
        "industry": "Retail",
        "deleted": False,
    }
    assert account_changes("account.deleted", account, present={"industry"}) == {"deleted": True}
    lead = Lead(id=uuid.uuid4(), source="api", source_id="L", lead_source="Webinar")
    created = lead_changes("lead.created", lead, present={"lead_source"})
    assert created == {"lead_source": "Webinar", "lifecycle": "open"}
    assert lead_changes("lead.converted", lead, present={"lead_source"})["lifecycle"] == (
        "converted"
    )
    assert lead_changes("lead.deleted", lead, present={"lead_source"}) == {"lifecycle": "deleted"}
    assert "lifecycle" not in lead_changes("lead.updated", lead, present={"lead_source"})


def test_a_deal_takes_its_account_territory_else_its_owner_primary_territory() -> None:
    anna, bob, carl = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ruleset = {
        "territories": [
            {"id": "emea", "members": [{"email": "Anna@Example.com"}]},
            {"id": "dach", "members": [{"rep_id": str(bob)}, {"email": "anna@example.com"}]},
            {"id": "broken", "members": "nobody"},
            "not a territory",
        ]
    }
    emails = {anna: "anna@example.com", bob: None, carl: "carl@example.com"}
    primary = primary_territories(ruleset, emails)
    assert primary == {anna: "emea", bob: "dach"}  # the first territory listing the rep
    assert deal_territory("north", anna, primary) == "north"
    assert deal_territory(None, anna, primary) == "emea"
    assert deal_territory(None, carl, primary) is None
    assert primary_territories({"territories": None}, emails) == {}


def test_scores_are_published_first_and_then_only_after_a_material_move() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    win = np.asarray([0.50, 0.515, 0.30])
    close = np.asarray([0.20, 0.20, 0.10])
    published = {a: (0.47, 0.20), b: (0.50, 0.21)}
    # a moved 0.03 (published again); b moved 0.015 and 0.01 (kept back); c is new.
    assert to_publish([a, b, c], [win, close], published, threshold=0.02) == [True, False, True]
    assert to_publish([b], [win[1:2], close[1:2]], published, threshold=0.01) == [True]
