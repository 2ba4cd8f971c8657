"""The fiscal calendar: which month and quarter a day belongs to, and their names."""

from __future__ import annotations

from datetime import date

import pytest

from salesops_forecast.domain.periods import (
    current_periods,
    fiscal_month,
    fiscal_quarter,
    fiscal_year,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("day", "start_month", "name", "starts_on", "ends_on"),
    [
        # Calendar fiscal year.
        (date(2026, 11, 15), 1, "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        (date(2026, 1, 1), 1, "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 12, 31), 1, "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        # Fiscal year from February: FY2027 runs Feb 2026 - Jan 2027.
        (date(2026, 1, 31), 2, "2026-Q4", date(2025, 11, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), 2, "2027-Q1", date(2026, 2, 1), date(2026, 4, 30)),
        (date(2026, 11, 15), 2, "2027-Q4", date(2026, 11, 1), date(2027, 1, 31)),
        (date(2027, 1, 10), 2, "2027-Q4", date(2026, 11, 1), date(2027, 1, 31)),
        # Fiscal year from October: FY2027 runs Oct 2026 - Sep 2027.
        (date(2026, 9, 30), 10, "2026-Q4", date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 10, 1), 10, "2027-Q1", date(2026, 10, 1), date(2026, 12, 31)),
        (date(2026, 12, 31), 10, "2027-Q1", date(2026, 10, 1), date(2026, 12, 31)),
        (date(2027, 1, 1), 10, "2027-Q2", date(2027, 1, 1), date(2027, 3, 31)),
    ],
)
def test_a_day_falls_in_its_fiscal_quarter(
    day: date, start_month: int, name: str, starts_on: date, ends_on: date
) -> None:
    quarter = fiscal_quarter(day, start_month=start_month)
    assert (quarter.kind, quarter.name) == ("quarter", name)
    assert (quarter.starts_on, quarter.ends_on) == (starts_on, ends_on)
    assert quarter.contains(day)


@pytest.mark.parametrize("start_month", [1, 2, 10])
def test_months_keep_their_calendar_names_under_any_fiscal_calendar(start_month: int) -> None:
    month = fiscal_month(date(2024, 2, 10), start_month=start_month)
    assert (month.kind, month.name) == ("month", "2024-02")
    assert (month.starts_on, month.ends_on) == (date(2024, 2, 1), date(2024, 2, 29))


@pytest.mark.parametrize(
    ("day", "start_month", "year"),
    [
        (date(2026, 12, 31), 1, 2026),
        (date(2026, 1, 31), 2, 2026),
        (date(2026, 2, 1), 2, 2027),
        (date(2026, 9, 30), 10, 2026),
        (date(2026, 10, 1), 10, 2027),
    ],
)
def test_a_fiscal_year_is_named_by_the_calendar_year_it_ends_in(
    day: date, start_month: int, year: int
) -> None:
    assert fiscal_year(day, start_month=start_month) == year


def test_a_run_covers_the_current_month_and_quarter() -> None:
    month, quarter = current_periods(date(2026, 11, 30), start_month=1)
    assert (month.name, quarter.name) == ("2026-11", "2026-Q4")
    assert month.contains(date(2026, 11, 1))
    assert not month.contains(date(2026, 12, 1))
    assert not quarter.contains(date(2027, 1, 1))
