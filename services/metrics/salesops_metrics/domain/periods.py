"""Windows over event time and the fiscal calendar.

A window is half-open, ``[from, to)``; a missing end is unbounded. Fiscal months keep their
calendar names (``2026-11``); fiscal quarters are named by the fiscal year, which is the
calendar year in which it ends (``2027-Q1`` starts on 1 February 2026 when the year starts in
February), as the forecast service names them. Period boundaries are UTC midnights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

PeriodKind = Literal["month", "quarter"]
ROLLING = {"7d": 7, "30d": 30, "90d": 90}
WINDOWS = (*ROLLING, "month", "quarter", "all")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


class BadWindow(ValueError):
    """A window or period the caller got wrong (answered 422)."""


@dataclass(frozen=True)
class Window:
    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime | None) -> bool:
        if moment is None:
            return False
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


ALL_TIME = Window()


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    name: str
    start: datetime
    end: datetime  # exclusive

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def contains_day(self, day: date) -> bool:
        return self.start.date() <= day < self.end.date()


def _month_start(year: int, month: int) -> datetime:
    index = year * 12 + month - 1
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _shift_months(start: datetime, months: int) -> datetime:
    return _month_start(start.year, start.month + months)


def fiscal_month(moment: datetime) -> Period:
    start = _month_start(moment.year, moment.month)
    return Period("month", f"{start.year}-{start.month:02d}", start, _shift_months(start, 1))


def fiscal_quarter(moment: datetime, *, start_month: int) -> Period:
    into_year = (moment.month - start_month) % 12
    start = _shift_months(_month_start(moment.year, moment.month), -(into_year % 3))
    fiscal_year = (
        moment.year + 1 if start_month != 1 and moment.month >= start_month else (moment.year)
    )
    name = f"{fiscal_year}-Q{into_year // 3 + 1}"
    return Period("quarter", name, start, _shift_months(start, 3))


def period_of(kind: PeriodKind, moment: datetime, *, start_month: int) -> Period:
    if kind == "month":
        return fiscal_month(moment)
    return fiscal_quarter(moment, start_month=start_month)


def last_closed(kind: PeriodKind, moment: datetime, *, start_month: int) -> Period:
    """The newest period of ``kind`` that ended at or before ``moment``."""
    running = period_of(kind, moment, start_month=start_month)
    return period_of(kind, running.start - timedelta(microseconds=1), start_month=start_month)


def parse_period(name: str, *, start_month: int) -> Period:
    """``2026-11`` (a month) or ``2027-Q1`` (a fiscal quarter)."""
    if match := _MONTH.match(name):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise BadWindow(f"no month {month} in period {name!r}")
        return fiscal_month(_month_start(year, month))
    if match := _QUARTER.match(name):
        fiscal_year, quarter = int(match.group(1)), int(match.group(2))
        year_starts = _month_start(fiscal_year - (start_month != 1), start_month)
        return fiscal_quarter(
            _shift_months(year_starts, 3 * (quarter - 1)), start_month=start_month
        )
    raise BadWindow(f"period {name!r} is neither YYYY-MM nor YYYY-Qn")


def resolve_window(
    spec: str | None,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    start_month: int,
) -> Window:
    """The window a request names: ``spec`` or explicit bounds, not both; all time by default."""
    if spec is not None and (start is not None or end is not None):
        raise BadWindow("give either window or from/to, not both")
    if start is not None or end is not None:
        return _explicit(start, end)
    if spec is None or spec == "all":
        return ALL_TIME
    if spec in ROLLING:
        return Window(now - timedelta(days=ROLLING[spec]), now)
    if spec == "month":
        period = fiscal_month(now)
        return Window(period.start, period.end)
    if spec == "quarter":
        period = fiscal_quarter(now, start_month=start_month)
        return Window(period.start, period.end)
    raise BadWindow(f"unknown window {spec!r}; one of {', '.join(WINDOWS)}, or from/to")


def _explicit(start: datetime | None, end: datetime | None) -> Window:
    for bound in (start, end):
        if bound is not None and bound.utcoffset() is None:
            raise BadWindow("from and to need a UTC offset (RFC 3339), or give a date")
    if start is not None and end is not None and start >= end:
        raise BadWindow("from must be before to")
    return Window(start, end)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)
