"""What the forecast service learns from the Maven import (``salesops demo``): a deal's
creation must not tell how it ended, or deals open while the import runs would be
forecast and scored by their outcome (a deal seen open in stage Won: the stage history's
P(win | Won) is 1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from salesops_cli.maven import load_maven_events
from salesops_common.events import Deal
from salesops_forecast.domain.pipeline import deal_changes

pytestmark = pytest.mark.unit
CLOSED_STAGES = {"Won", "Lost"}


def test_the_import_creates_every_deal_open_and_closes_it_by_its_outcome() -> None:
    deals: dict[str, dict[str, Any]] = {}
    outcomes = 0
    for event in load_maven_events():
        kind = event["type"]
        if not kind.startswith("deal."):
            continue
        data = event["data"]
        deal = Deal.model_validate({**data, "id": str(uuid.uuid4()), "source": event["source"]})
        at = datetime.fromisoformat(event["occurred_at"])
        changes = deal_changes(kind, deal, at=at, present=data.keys())
        if kind == "deal.created":
            # As the forecast service records it: open, in an open stage, no close day.
            assert changes["outcome"] == "open"
            assert changes["stage"] not in CLOSED_STAGES, data["source_id"]
            assert changes.get("closed_at") is None
            deals[data["source_id"]] = dict(changes)
        else:
            outcomes += 1
            seen = deals[data["source_id"]]
            assert seen["outcome"] == "open"  # created before its outcome
            seen.update(changes)
            assert seen["stage"] in CLOSED_STAGES
            assert seen["outcome"] == kind.removeprefix("deal.")
            assert seen["closed_at"] is not None
            assert seen["closed_at"] >= seen["created_at"]
    assert outcomes > 6000
    assert all(d["outcome"] == "open" for d in deals.values() if d["stage"] not in CLOSED_STAGES)
