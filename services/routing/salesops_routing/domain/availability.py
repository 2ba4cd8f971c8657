"""Whether a rep can take a lead right now, and if not, why.

Everything is judged at one instant (``now``) in the rep's own time zone: working hours and
the day and week that capacity counts restart in are the rep's local ones, because a rep in
Tokyo starts their Monday while Los Angeles still has Sunday evening. Bad data never makes a
rep disappear silently: an unknown time zone counts as UTC and unreadable working hours as
no restriction, so the worst case is a lead at an odd hour rather than a rep who never gets one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal, get_args
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesops_common.events import WorkingHours

SkipReason = Literal[
    "inactive", "manager", "out_of_office", "outside_hours", "at_capacity", "previous_owner"
]
# In the order they are checked, which is also the order summaries list them in.
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)

_HH_MM = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Absence:
    """An out-of-office period, ``[starts_at, ends_at)``."""

    starts_at: datetime
    ends_at: datetime
    note: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.starts_at, "Absence.starts_at")
        _require_aware(self.ends_at, "Absence.ends_at")

    def covers(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at


@dataclass(frozen=True)
class RepState:
    """A rep as the routing decision sees them at ``now``; ``order`` is their fixed place in
    the rotation order (ties between equally placed reps are broken by it)."""

    id: UUID
    order: int
    name: str | None = None
    active: bool = True
    role: str | None = None  # "manager" never works leads
    time_zone: str | None = None  # IANA; None → UTC
    working_hours: WorkingHours | None = None  # None → always available
    out_of_office: tuple[Absence, ...] = ()
    capacity_per_day: int | None = None  # None → no cap
    capacity_per_week: int | None = None
    assigned_today: int = 0  # since the start of the rep's local day
    assigned_this_week: int = 0  # since the start of the rep's local ISO week (Monday)
    open_leads: int = 0  # assigned and not converted, disqualified or deleted


def capacity_windows(time_zone: str | None, now: datetime) -> tuple[datetime, datetime]:
    """Start of the rep's local day and local ISO week, as aware UTC datetimes (the repository
    counts assignments since them)."""
    _require_aware(now, "now")
    zone, _ = resolve_zone(time_zone)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.isoweekday() - 1)
    return _local_midnight(today, zone), _local_midnight(monday, zone)


def unavailable_because(
    rep: RepState, now: datetime, *, check_hours: bool = True, check_capacity: bool = True
) -> tuple[SkipReason, str] | None:
    """Why the rep cannot take a lead now (reason code plus a short human detail), or None
    if they can. ``check_hours`` / ``check_capacity`` off serve callers that route by
    ownership rather than rotation (an account owner keeps their leads after hours)."""
    _require_aware(now, "now")
    if not rep.active:
        return "inactive", "inactive"
    if rep.role == "manager":
        # Managers coach the reps; they never work leads themselves.
        return "manager", "managers do not take leads"
    zone, zone_name = resolve_zone(rep.time_zone)
    if (back := _back_from_absence(rep.out_of_office, now)) is not None:
        return "out_of_office", _absence_detail(back, zone, rep.out_of_office, now)
    hours = rep.working_hours
    if check_hours and hours is not None and not _within_hours(hours, now.astimezone(zone)):
        return "outside_hours", f"outside working hours {hours.start}-{hours.end} {zone_name}"
    if check_capacity:
        return _capacity_reached(rep)
    return None


@lru_cache(maxsize=1024)
def resolve_zone(name: str | None) -> tuple[tzinfo, str]:
    """The rep's zone and its name; a missing, malformed or unknown zone reads as UTC."""
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return UTC, "UTC"


def _require_aware(moment: datetime, what: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    # fold=0 picks the earlier reading of an ambiguous midnight and, for a midnight skipped by
    # a DST jump, the instant of the jump: either way the real start of the local day.
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _back_from_absence(absences: tuple[Absence, ...], now: datetime) -> datetime | None:
    """When the absence covering ``now`` ends, following back-to-back or overlapping ones, so
    the detail says when the rep is really back; None if no absence covers ``now``."""
    back = max((a.ends_at for a in absences if a.covers(now)), default=None)
    while back is not None and (later := [a.ends_at for a in absences if a.covers(back)]):
        back = max(later)  # strictly later each time, so this ends
    return back


def _absence_detail(
    back: datetime, zone: tzinfo, absences: tuple[Absence, ...], now: datetime
) -> str:
    local = back.astimezone(zone)
    until = local.date().isoformat()
    if local.time() != time():
        until += f" {local:%H:%M}"
    note = next((a.note for a in absences if a.covers(now) and a.note), None)
    return f"out of office until {until}" + (f" ({note})" if note else "")


def clock_minutes(text: str) -> int | None:
    """Minutes after midnight of an ``HH:MM`` time (``24:00`` is the end of the day)."""
    match = _HH_MM.match(text.strip())
    if match is None:
        return None
    hours, minutes = int(match[1]), int(match[2])
    if minutes >= 60 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _within_hours(hours: WorkingHours, local: datetime) -> bool:
    start, end = clock_minutes(hours.start), clock_minutes(hours.end)
    if start is None or end is None:
        return True  # unreadable hours restrict nobody (see the module docstring)
    minute = local.hour * 60 + local.minute
    today = local.isoweekday()
    if start < end:
        return today in hours.days and start <= minute < end
    if start == end:
        return today in hours.days  # a shift round the clock on the listed days
    # An overnight shift belongs to the day it starts on: Friday 22:00-06:00 covers early
    # Saturday, and a Monday-to-Friday night shift leaves early Monday free.
    yesterday = today - 1 if today > 1 else 7
    return (minute >= start and today in hours.days) or (minute < end and yesterday in hours.days)


def _capacity_reached(rep: RepState) -> tuple[SkipReason, str] | None:
    if rep.capacity_per_day is not None and rep.assigned_today >= rep.capacity_per_day:
        return "at_capacity", f"at capacity: {rep.assigned_today} of {rep.capacity_per_day} today"
    if rep.capacity_per_week is not None and rep.assigned_this_week >= rep.capacity_per_week:
        detail = f"at capacity: {rep.assigned_this_week} of {rep.capacity_per_week} this week"
        return "at_capacity", detail
    return None
