"""The pipeline snapshot converges whatever order deal and rep events arrive in."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from salesops_common.events import Deal
from salesops_forecast.domain.pipeline import VersionedRecord, deal_changes, merge_newer

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_an_older_update_does_not_overwrite_a_newer_one_but_fills_what_is_unknown() -> None:
    newer = merge_newer(VersionedRecord(), {"amount": Decimal(2000)}, at=T0)
    late = merge_newer(
        newer, {"amount": Decimal(500), "stage": "Proposal"}, at=T0 - timedelta(hours=1)
    )
    assert late.values == {"amount": Decimal(2000), "stage": "Proposal"}
    assert late.last_event_at == T0


def test_an_update_changes_only_the_fields_it_carries() -> None:
    created = merge_newer(VersionedRecord(), {"stage": "Discovery", "amount": Decimal(10)}, at=T0)
    updated = merge_newer(created, {"stage": "Proposal"}, at=T0 + timedelta(1))
    assert updated.values == {"stage": "Proposal", "amount": Decimal(10)}


def test_a_field_the_crm_cleared_is_cleared_unless_newer_news_exists() -> None:
    created = merge_newer(VersionedRecord(), {"stage": "Discovery", "amount": Decimal(10)}, at=T0)
    cleared = merge_newer(created, {"amount": None}, at=T0 + timedelta(1))
    assert cleared.values == {"stage": "Discovery"}
    stale = merge_newer(cleared, {"amount": Decimal(99)}, at=T0)  # older than the clearing
    assert stale.values == {"stage": "Discovery"}


def test_only_the_fields_an_event_carries_become_changes() -> None:
    deal = Deal(id=uuid.uuid4(), source="api", source_id="D1", stage="Proposal", amount=None)
    changes = deal_changes("deal.updated", deal, at=T0, present={"stage", "amount"})
    assert changes == {"stage": "Proposal", "amount": None}


def test_events_with_the_same_time_apply_in_delivery_order() -> None:
    deal = Deal(id=uuid.uuid4(), source="api", source_id="D1", stage="Won")
    created = merge_newer(VersionedRecord(), {"outcome": "open"}, at=T0)
    won = merge_newer(
        created, deal_changes("deal.won", deal, at=T0, present=deal.model_fields_set), at=T0
    )
    assert won.values["outcome"] == "won"
    assert won.values["closed_at"] == T0  # the event's time when the CRM sent none


def test_a_deleted_deal_keeps_its_fields_and_is_only_marked() -> None:
    deal = Deal(id=uuid.uuid4(), source="api", source_id="D1")
    assert deal_changes("deal.deleted", deal, at=T0, present=deal.model_fields_set) == {
        "deleted": True
    }


def test_a_created_deal_is_open_with_what_the_crm_sent() -> None:
    deal = Deal(
        id=uuid.uuid4(),
        source="api",
        source_id="D1",
        stage="Discovery",
        amount=Decimal(100),
        expected_close_date=date(2026, 11, 30),
    )
    changes = deal_changes("deal.created", deal, at=T0, present=deal.model_fields_set)
    assert changes["outcome"] == "open"
    assert changes["deleted"] is False
    assert changes["expected_close_date"] == date(2026, 11, 30)
    assert "owner_id" not in changes  # not carried: merge_newer leaves it alone
