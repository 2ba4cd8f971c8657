"""Business-hours time: how much of an interval falls inside a rep's working hours, in the
rep's time zone.

The shifts follow routing's reading of ``working_hours``: ``start < end`` is a day shift;
``start == end`` is round the clock on the listed days; ``start > end`` is a night shift that
belongs to the day it starts on (Friday 22:00–06:00 covers early Saturday). Days are ISO
weekdays (1 = Monday). Unreadable hours restrict nothing (business time = calendar time), and
a missing or unknown zone reads as UTC, as in routing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesops_common.events import WorkingHours

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
DEFAULT_HOURS = WorkingHours()


def clock_minutes(text: str) -> int | None:
    match = _CLOCK.match(text.strip())
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


@lru_cache(maxsize=1024)
def zone_of(name: str | None) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return UTC


def business_seconds(
    start: datetime, end: datetime, *, hours: WorkingHours | None, time_zone: str | None
) -> float:
    """Seconds of [start, end) inside the working hours (DEFAULT_HOURS when None)."""
    if end <= start:
        return 0.0
    hours = hours or DEFAULT_HOURS
    first, last = clock_minutes(hours.start), clock_minutes(hours.end)
    if first is None or last is None:
        return (end - start).total_seconds()
    zone = zone_of(time_zone)
    days = set(hours.days)
    # A night shift that started the day before may still be running at ``start``.
    day = start.astimezone(zone).date() - timedelta(days=1)
    stop = end.astimezone(zone).date()
    total = 0.0
    while day <= stop:
        if day.isoweekday() in days:
            shift_start, shift_end = _shift(day, first, last, zone)
            overlap = min(end, shift_end) - max(start, shift_start)
            total += max(overlap.total_seconds(), 0.0)
        day += timedelta(days=1)
    return total


@lru_cache(maxsize=1 << 16)
def _shift(day: date, first: int, last: int, zone: tzinfo) -> tuple[datetime, datetime]:
    """One day's shift as UTC instants; DST days are as long as the wall clock says. (The
    same few days and hours come back for every lead: the zone arithmetic is done once.)"""
    begins = _local(day, first, zone)
    if first < last:
        return begins, _local(day, last, zone)
    if first == last:
        return _local(day, 0, zone), _local(day + timedelta(days=1), 0, zone)
    return begins, _local(day + timedelta(days=1), last, zone)


def _local(day: date, minutes: int, zone: tzinfo) -> datetime:
    clock = time(minutes // 60, minutes % 60)
    return datetime.combine(day, clock, zone).astimezone(UTC)
