"""Which families a snapshot keeps from the one before (service_layer/kpis._keepable): those
none of whose tables changed since each was read; paced, also those that changed but have not
rested as long as their last read took; never one read longer ago than ``keep_for``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from salesops_metrics.domain.dependencies import DataVersion
from salesops_metrics.service_layer.kpis import Exposition, Stamp, _keepable

pytestmark = pytest.mark.unit
AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
SINCE = AT - timedelta(seconds=10)


def version(forecasts: int = 1, dead_letters: int = 0) -> DataVersion:
    return DataVersion((("forecast.published", forecasts),), dead_letters, "q", "r")


def previous(**stamps: Stamp) -> Exposition:
    return Exposition({}, {}, {}, version=version(), stamps=stamps)


def stamp(v: DataVersion, *, ended: float = 100.0, took: float = 1.0, at: datetime = AT) -> Stamp:
    return Stamp(1, at, v, ended, took)


def test_a_family_whose_tables_did_not_change_is_kept_paced_or_not() -> None:
    before = previous(forecast=stamp(version()), dead_letters=stamp(version()))
    now = version(dead_letters=1)  # a dead letter: only its family changed
    assert _keepable(before, now, SINCE) == ({"forecast"}, set())
    assert _keepable(before, now, SINCE, paced_at=100.5) == (
        {"forecast", "dead_letters"},
        {"dead_letters"},
    )


def test_paced_a_family_that_changed_is_read_again_once_it_rested_as_long_as_it_took() -> None:
    """Rested: from the end of its last read."""
    before = previous(forecast=stamp(version(), ended=100.0, took=1.5))
    now = version(forecasts=2)
    assert _keepable(before, now, SINCE, paced_at=101.4) == ({"forecast"}, {"forecast"})
    assert _keepable(before, now, SINCE, paced_at=101.5) == (set(), set())
    assert _keepable(before, now, SINCE) == (set(), set())  # not paced: read at once


def test_nothing_is_kept_longer_than_keep_for_however_paced() -> None:
    old = AT - timedelta(seconds=11)
    before = previous(forecast=stamp(version(), at=old), dead_letters=stamp(version(), at=old))
    assert _keepable(before, version(forecasts=2), SINCE, paced_at=100.1) == (set(), set())


def test_a_family_kept_while_it_had_changed_is_judged_by_the_version_it_was_read_at() -> None:
    """The exposition before is as of version 2, but its forecast family was read at version
    1 and kept (not due): though nothing changed since version 2, it is stale, and is read
    again once due."""
    before = Exposition(
        {}, {}, {}, version=version(forecasts=2), stamps={"forecast": stamp(version())}
    )
    now = version(forecasts=2)
    assert _keepable(before, now, SINCE, paced_at=100.5) == ({"forecast"}, {"forecast"})
    assert _keepable(before, now, SINCE, paced_at=101.0) == (set(), set())
    assert _keepable(before, now, SINCE) == (set(), set())


def test_nothing_is_kept_without_a_snapshot_before() -> None:
    assert _keepable(None, version(), SINCE, paced_at=0.0) == (set(), set())
