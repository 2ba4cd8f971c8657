"""Duplicate matching meets its quality target on the labelled set (a quality target, not a
timing one)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from salesops_ingest.domain.matching import best_match, blocking_keys
from salesops_ingest.quality.dedupe_eval import (
    DISTINCT_KINDS,
    DUPLICATE_KINDS,
    LabelledPair,
    evaluate,
    generate_labelled_set,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pairs() -> list[LabelledPair]:
    return generate_labelled_set()


@pytest.fixture(scope="module")
def report(pairs: list[LabelledPair]) -> dict[str, Any]:
    return evaluate(pairs)


def test_precision_and_recall_meet_the_target(report: dict[str, Any]) -> None:
    assert report["pairs"] == 4000
    assert report["precision"] >= 0.99, report
    assert report["recall"] >= 0.95, report


def test_report_counts_add_up(report: dict[str, Any], pairs: list[LabelledPair]) -> None:
    assert report["duplicates"] == sum(p.is_duplicate for p in pairs)
    assert report["true_positive"] + report["false_negative"] == report["duplicates"]
    kinds = report["by_corruption"]
    assert sum(k["pairs"] for k in kinds.values()) == report["pairs"]
    assert (
        sum(k["false_positive"] for k in kinds.values() if not k["duplicate"])
        == (report["false_positive"])
    )


def test_every_kind_of_duplicate_is_mostly_found(report: dict[str, Any]) -> None:
    for kind in DUPLICATE_KINDS:
        assert report["by_corruption"][kind]["recall"] >= 0.8, (kind, report)


def test_set_has_both_labels_and_every_kind(pairs: list[LabelledPair]) -> None:
    labels = Counter(p.is_duplicate for p in pairs)
    assert 0.35 <= labels[True] / len(pairs) <= 0.45
    kinds = Counter(p.corruption for p in pairs)
    assert set(kinds) == set(DUPLICATE_KINDS) | set(DISTINCT_KINDS)
    assert min(kinds.values()) >= 100
    for pair in pairs:
        assert pair.is_duplicate == (pair.corruption in DUPLICATE_KINDS)


def test_negatives_are_hard(report: dict[str, Any], pairs: list[LabelledPair]) -> None:
    """Most distinct people share a blocking key, so that the matcher (not blocking) has to
    tell them apart; except those whose names no rule could match, which the blocking keys
    keep apart by design (another company; colleagues whose last names are more than one typo
    apart): for them, the matcher without blocking would not have merged any pair either."""
    for kind in DISTINCT_KINDS:
        stats = report["by_corruption"][kind]
        of_kind = [p for p in pairs if p.corruption == kind]
        if kind == "same_name_other_company":
            assert all(p.new.last_name == p.existing.last_name for p in of_kind)
        elif kind == "colleague_same_first_name":
            assert stats["compared"] == 0, stats
            assert all(best_match(p.new, [(0, p.existing)]) is None for p in of_kind)
        else:
            assert stats["compared"] >= 0.6 * stats["pairs"], (kind, stats)


def test_blocking_loses_no_match(pairs: list[LabelledPair]) -> None:
    """Every pair of the labelled set that the rules match when compared directly shares a
    blocking key, so the pipeline compares it: the keys bound the candidates, not the
    matches."""
    matched = [p for p in pairs if best_match(p.new, [(0, p.existing)]) is not None]
    assert len(matched) > 1500
    for pair in matched:
        assert not set(blocking_keys(pair.new)).isdisjoint(blocking_keys(pair.existing)), pair


def test_the_set_is_normalized() -> None:
    sample = generate_labelled_set(seed=3, size=300)
    for pair in sample:
        for lead in (pair.existing, pair.new):
            assert lead.email is None or lead.email == lead.email.strip().lower()
            assert lead.phone is None or lead.phone.startswith("+")
            assert lead.domain is None or lead.domain == lead.domain.lower()


def test_generation_is_deterministic() -> None:
    assert generate_labelled_set(seed=11, size=200) == generate_labelled_set(seed=11, size=200)
    assert generate_labelled_set(seed=11, size=200) != generate_labelled_set(seed=12, size=200)
