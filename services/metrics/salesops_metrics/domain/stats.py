"""The statistics the KPIs are made of, with the conventions every KPI shares.

Percentiles are the "linear between closest ranks" kind (Hyndman & Fan type 7: numpy's and
Excel's PERCENTILE.INC default), so the median of an even count is the mean of the two middle
values. An observation that never ended (a lead never touched) is ``math.inf``: it sorts
last, so a percentile that lands on it is unbounded, never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-quantile (0 ≤ q ≤ 1) of ``values``; None when there are none; ``math.inf``
    when it falls on or between unended observations."""
    return percentile_of_sorted(sorted(values), q)


def percentile_of_sorted(ordered: Sequence[float], q: float) -> float | None:
    """:func:`percentile` of values already in ascending order."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    fraction = position - low
    below = ordered[low]
    if fraction == 0 or math.isinf(below):
        return below
    above = ordered[low + 1]
    if math.isinf(above):
        return math.inf
    return below + fraction * (above - below)


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator; None, never 0, when the denominator is 0 (no data)."""
    return numerator / denominator if denominator else None
