"""Percentiles, business hours, windows and fiscal periods, pure, with hand-computed values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from salesops_common.events import WorkingHours
from salesops_metrics.domain.business_hours import business_seconds
from salesops_metrics.domain.periods import (
    ALL_TIME,
    BadWindow,
    fiscal_quarter,
    parse_period,
    resolve_window,
)
from salesops_metrics.domain.stats import mean, percentile

pytestmark = pytest.mark.unit
NY = "America/New_York"
NINE_TO_FIVE = WorkingHours(start="09:00", end="17:00", days=[1, 2, 3, 4, 5])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- percentiles ------------------------------------------------------------------------------


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    assert percentile([4, 1, 3, 2], 0.5) == 2.5


def test_p90_interpolates_between_closest_ranks() -> None:
    # sorted 1, 2, 3, 4, 10: position 0.9 * 4 = 3.6 -> 4 + 0.6 * 6
    assert percentile([10, 1, 3, 2, 4], 0.9) == pytest.approx(7.6)


def test_a_percentile_among_unended_observations_is_unbounded() -> None:
    times = [30, 45, 3960, math.inf, math.inf]
    assert percentile(times, 0.5) == 3960  # position 2 exactly
    assert percentile(times, 0.6) == math.inf  # position 2.4: between 3960 and never
    assert percentile([math.inf], 0.5) == math.inf


def test_no_observation_has_no_percentile_and_no_mean() -> None:
    assert percentile([], 0.5) is None
    assert mean([]) is None
    assert mean([1, 2, 6]) == 3


# --- business hours ---------------------------------------------------------------------------


def test_friday_afternoon_to_monday_morning_is_two_working_hours() -> None:
    friday_4pm_ny = utc(2021, 6, 11, 20)  # EDT, UTC-4
    monday_10am_ny = utc(2021, 6, 14, 14)
    seconds = business_seconds(friday_4pm_ny, monday_10am_ny, hours=NINE_TO_FIVE, time_zone=NY)
    assert seconds == 2 * 3600


def test_a_night_shift_counts_on_the_day_it_starts() -> None:
    nights = WorkingHours(start="22:00", end="06:00", days=[5])  # Friday night only
    friday_8pm, monday_8am = utc(2021, 6, 11, 20), utc(2021, 6, 14, 8)
    assert business_seconds(friday_8pm, monday_8am, hours=nights, time_zone="UTC") == 8 * 3600


def test_a_day_in_which_clocks_spring_forward_is_as_long_as_the_wall_clock_says() -> None:
    round_the_clock = WorkingHours(start="00:00", end="00:00", days=[7])  # Sundays only
    sunday = utc(2021, 3, 14, 5)  # New York's midnight, the day of the change
    seconds = business_seconds(
        sunday, sunday + timedelta(days=2), hours=round_the_clock, time_zone=NY
    )
    assert seconds == 23 * 3600


def test_no_hours_means_nine_to_five_weekdays_and_unreadable_hours_restrict_nothing() -> None:
    saturday, sunday = utc(2021, 6, 12, 10), utc(2021, 6, 13, 10)
    assert business_seconds(saturday, sunday, hours=None, time_zone=None) == 0
    odd = WorkingHours(start="9am", end="5pm")
    assert business_seconds(saturday, sunday, hours=odd, time_zone=NY) == 24 * 3600


# --- windows and fiscal periods ---------------------------------------------------------------

NOW = utc(2026, 11, 29, 12)


def window(spec: str | None = None, **bounds: datetime) -> tuple[datetime | None, datetime | None]:
    found = resolve_window(
        spec, start=bounds.get("start"), end=bounds.get("end"), now=NOW, start_month=2
    )
    return found.start, found.end


def test_rolling_windows_end_now() -> None:
    assert window("7d") == (NOW - timedelta(days=7), NOW)
    assert window("90d") == (NOW - timedelta(days=90), NOW)
    assert resolve_window(None, start=None, end=None, now=NOW, start_month=1) == ALL_TIME


def test_month_and_quarter_follow_the_fiscal_year() -> None:
    assert window("month") == (utc(2026, 11, 1), utc(2026, 12, 1))
    # The year starts in February: Nov-Dec-Jan is the fourth quarter of FY2027.
    assert window("quarter") == (utc(2026, 11, 1), utc(2027, 2, 1))
    assert fiscal_quarter(utc(2027, 1, 15), start_month=2).name == "2027-Q4"
    assert fiscal_quarter(utc(2026, 2, 1), start_month=2).name == "2027-Q1"
    assert fiscal_quarter(utc(2026, 11, 5), start_month=1).name == "2026-Q4"


def test_period_names_read_back_as_the_same_periods() -> None:
    q1 = parse_period("2027-Q1", start_month=2)
    assert (q1.start, q1.end) == (utc(2026, 2, 1), utc(2026, 5, 1))
    month = parse_period("2026-11", start_month=2)
    assert (month.start, month.end) == (utc(2026, 11, 1), utc(2026, 12, 1))
    for bad in ("2026-13", "2026-Q5", "Q1"):
        with pytest.raises(BadWindow):
            parse_period(bad, start_month=1)


def test_explicit_bounds_need_offsets_and_order_and_exclude_named_windows() -> None:
    assert window(start=utc(2026, 1, 1)) == (utc(2026, 1, 1), None)
    with pytest.raises(BadWindow, match="not both"):
        window("30d", start=utc(2026, 1, 1))
    with pytest.raises(BadWindow, match="before"):
        window(start=utc(2026, 2, 1), end=utc(2026, 1, 1))
    with pytest.raises(BadWindow, match="offset"):
        window(start=datetime(2026, 1, 1))
    with pytest.raises(BadWindow, match="unknown window"):
        window("fortnight")
