"""The business minutes a process keeps (service_layer/reports.BusinessMinutes): the value the
domain works out, each worked out once, and never more kept than the bound."""

from __future__ import annotations

from datetime import UTC, datetime

from salesops_metrics.domain.projection import micros
from salesops_metrics.service_layer.reports import BusinessMinutes, Schedule, _minutes_between

BERLIN: Schedule = (("09:00", "17:00", (0, 1, 2, 3, 4)), "Europe/Berlin")
ANYTIME: Schedule = (None, None)
MONDAY = micros(datetime(2026, 11, 23, 8, tzinfo=UTC))
HOUR = 3_600_000_000


def test_each_value_is_the_domains_worked_out_once_per_schedule_and_times() -> None:
    calls: list[tuple[int, int, Schedule]] = []

    def compute(created: int, touched: int, schedule: Schedule) -> float:
        calls.append((created, touched, schedule))
        return _minutes_between(created, touched, schedule)

    kept = BusinessMinutes(limit=100, compute=compute)
    asked = [
        (MONDAY, MONDAY + 3 * HOUR, BERLIN),
        (MONDAY, MONDAY + 3 * HOUR, ANYTIME),  # same times, another schedule
        (MONDAY, MONDAY + 30 * HOUR, BERLIN),
        (MONDAY + HOUR, MONDAY + 3 * HOUR, BERLIN),
    ]
    first = [kept(c, t, s) for c, t, s in asked]
    again = [kept(c, t, s) for c, t, s in asked]
    assert first == again == [_minutes_between(c, t, s) for c, t, s in asked]
    assert first[0] != first[1]  # the schedule matters: Berlin's day begins at 08:00 UTC
    assert calls == asked  # the second round was kept
    assert kept.size == len(asked)


def test_it_never_keeps_more_than_its_bound_and_times_before_1970_are_not_kept() -> None:
    kept = BusinessMinutes(limit=10)
    for i in range(35):
        created = MONDAY + i * HOUR
        touched = created + 2 * HOUR
        assert kept(created, touched, BERLIN) == _minutes_between(created, touched, BERLIN)
        assert 1 <= kept.size <= 10
    size = kept.size
    before_1970 = -30 * HOUR
    expected = _minutes_between(before_1970, before_1970 + 2 * HOUR, BERLIN)
    assert kept(before_1970, before_1970 + 2 * HOUR, BERLIN) == expected
    assert kept.size == size
