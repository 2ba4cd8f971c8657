"""Reading window bounds from a query string."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from salesops_common.http import ApiError
from salesops_metrics.entrypoints.api import parse_bound

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-01", datetime(2026, 7, 1, tzinfo=UTC)),
        ("2026-07-01T00:00:00Z", datetime(2026, 7, 1, tzinfo=UTC)),
        # An unescaped "+" arrives as a space.
        ("2026-07-01T02:00:00 02:00", datetime(2026, 7, 1, tzinfo=UTC)),
        ("2026-07-01T02:00:00.5 02:00", datetime(2026, 7, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_dates_and_date_times_with_offsets_are_read(text: str, expected: datetime) -> None:
    assert parse_bound("from", text) == expected


def test_an_offset_is_kept_as_given() -> None:
    found = parse_bound("to", "2026-07-01T02:00:00-05:00")
    assert found is not None
    assert found.utcoffset() == timezone(timedelta(hours=-5)).utcoffset(None)


def test_anything_else_is_a_422() -> None:
    with pytest.raises(ApiError) as raised:
        parse_bound("from", "last tuesday")
    assert raised.value.status == 422
