"""Which season a series of bookings is forecast with."""

from __future__ import annotations

from typing import Literal

Frequency = Literal["month", "week"]


def season_length(frequency: Frequency, periods: int) -> int:
    """A year once two years of history exist, else a quarter: sales close in quarters, and
    a quarter's pattern is learnable from two quarters."""
    year, quarter = (12, 3) if frequency == "month" else (52, 13)
    return year if periods >= 2 * year else quarter


def quarter_length(frequency: Frequency) -> int:
    """Periods in a quarter: the season of the within-quarter rhythm (quarter-end push)."""
    return 3 if frequency == "month" else 13
