"""The fiscal calendar: which month and quarter a day falls in, and what they are called."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PeriodKind = Literal["month", "quarter"]


@dataclass(frozen=True)
class FiscalPeriod:
    """A forecast horizon: both ends are days that belong to the period."""

    kind: PeriodKind
    name: str
    starts_on: date
    ends_on: date

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


def _add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _months_long(first_day: date, months: int) -> date:
    return _add_months(first_day, months) - timedelta(days=1)


def fiscal_year(day: date, *, start_month: int) -> int:
    """A fiscal year is named by the calendar year in which it ends (FY2027 from Feb 2026)."""
    if start_month != 1 and day.month >= start_month:
        return day.year + 1
    return day.year


def fiscal_month(day: date, *, start_month: int) -> FiscalPeriod:
    """Months keep their calendar names (``2026-11``) under any fiscal calendar, so a month
    name is never ambiguous; only quarters carry the fiscal year."""
    del start_month  # a month is the same month whatever the fiscal year does
    first = day.replace(day=1)
    return FiscalPeriod("month", f"{day.year}-{day.month:02d}", first, _months_long(first, 1))


def fiscal_quarter(day: date, *, start_month: int) -> FiscalPeriod:
    """Quarters count in threes from the first fiscal month."""
    months_into_year = (day.month - start_month) % 12
    quarter = months_into_year // 3 + 1
    first = _add_months(day.replace(day=1), -(months_into_year % 3))
    name = f"{fiscal_year(day, start_month=start_month)}-Q{quarter}"
    return FiscalPeriod("quarter", name, first, _months_long(first, 3))


def current_periods(day: date, *, start_month: int) -> tuple[FiscalPeriod, FiscalPeriod]:
    """The horizons a forecast run covers: the fiscal month and the fiscal quarter of ``day``."""
    return (
        fiscal_month(day, start_month=start_month),
        fiscal_quarter(day, start_month=start_month),
    )
