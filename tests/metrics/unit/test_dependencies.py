"""Which families a change makes stale, from the counts of events applied by type, the dead
letters, quotas and rates (the tables themselves are held to the database in
tests/metrics/integration/test_incremental.py)."""

from __future__ import annotations

import pytest

from salesops_metrics.domain.dependencies import READS, DataVersion, stale_families

pytestmark = pytest.mark.unit
BEFORE = DataVersion((("deal.won", 3), ("lead.scored", 7)), 0, "q", "r")


def version(
    *events: tuple[str, int], dead_letters: int = 0, quotas: str = "q", rates: str = "r"
) -> DataVersion:
    return DataVersion(tuple(sorted(events)), dead_letters, quotas, rates)


def test_nothing_changed_makes_nothing_stale() -> None:
    assert stale_families(BEFORE, version(("deal.won", 3), ("lead.scored", 7))) == set()


def test_scores_change_no_kpi() -> None:
    after = version(("deal.won", 3), ("lead.scored", 70), ("deal.scored", 5))
    assert stale_families(BEFORE, after) == set()


def test_a_type_first_applied_counts_as_a_change() -> None:
    after = version(("deal.won", 3), ("lead.scored", 7), ("forecast.published", 1))
    assert stale_families(BEFORE, after) == {"forecast"}


def test_a_type_not_known_makes_every_family_stale() -> None:
    after = version(("deal.won", 3), ("lead.scored", 7), ("lead.teleported", 1))
    assert stale_families(BEFORE, after) == set(READS)


def test_a_rep_or_a_rate_makes_every_family_stale() -> None:
    rep = version(("deal.won", 3), ("lead.scored", 7), ("rep.updated", 1))
    assert stale_families(BEFORE, rep) == set(READS)
    assert stale_families(BEFORE, version(*BEFORE.events, rates="s")) == set(READS)


def test_quotas_and_dead_letters_make_their_own_family_stale() -> None:
    assert stale_families(BEFORE, version(*BEFORE.events, quotas="p")) == {"quota"}
    assert stale_families(BEFORE, version(*BEFORE.events, dead_letters=1)) == {"dead_letters"}


def test_deal_events_leave_adoption_and_assignments_alone() -> None:
    after = version(("deal.won", 4), ("lead.scored", 7))
    assert stale_families(BEFORE, after) == {
        "deal_closed",
        "deal_created",
        "deal_open",
        "stage_entered",
        "lead_created",
        "forecast",
        "quota",
    }
