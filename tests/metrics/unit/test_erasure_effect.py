"""``lead.erased`` in metrics: one effect, on the lead's logged events, and no entity change
(the lead keeps counting as it did)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from salesops_common.envelope import Envelope
from salesops_common.events import LeadErased
from salesops_metrics.domain.projection import EntityChange, Erased, effects_of


def test_an_erasure_changes_no_projection_and_asks_for_the_log_to_be_scrubbed() -> None:
    lead_id = uuid4()
    data = LeadErased(
        id=lead_id, source="api", source_id="L1", erased_at=datetime(2026, 11, 2, tzinfo=UTC)
    )
    effects = effects_of(Envelope.of("lead.erased", data, source="/ingest/api/default"))
    assert effects == [Erased(lead_id)]
    assert not any(isinstance(e, EntityChange) for e in effects)
