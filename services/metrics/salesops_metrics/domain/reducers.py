"""How one group's observations become a value: the shapes every KPI is one of.

Each shape has a form over the observations themselves and one over what they add up to
(``share_of`` for ``share``...), for observations counted and summed in the database: both
make the same value from the same observations."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from salesops_metrics.domain.kpis import KpiValue
from salesops_metrics.domain.stats import mean, percentile, percentile_of_sorted, ratio

T = TypeVar("T")


def share(flags: list[bool]) -> KpiValue:
    """True ones / all; null with none."""
    return share_of(sum(flags), len(flags))


def share_of(hits: int, n: int) -> KpiValue:
    return KpiValue(ratio(hits, n), hits, n, n)


def count(items: list[T]) -> KpiValue:
    return count_of(len(items))


def count_of(n: int) -> KpiValue:
    return KpiValue(n, n, None, n)


def amount_share(pairs: list[tuple[Decimal, Decimal]]) -> KpiValue:
    """Σ part / Σ whole over (part, whole) amounts."""
    part = sum((p for p, _ in pairs), Decimal(0))
    whole = sum((w for _, w in pairs), Decimal(0))
    return amount_share_of(part, whole, len(pairs))


def amount_share_of(part: Decimal, whole: Decimal, n: int) -> KpiValue:
    value = float(part / whole) if whole else None
    return KpiValue(value, float(part), float(whole), n)


def amount_total(amounts: list[Decimal]) -> KpiValue:
    return amount_total_of(sum(amounts, Decimal(0)), len(amounts))


def amount_total_of(total: Decimal, n: int) -> KpiValue:
    return KpiValue(float(total), float(total), None, n)


def quantile(q: float) -> Callable[[list[float]], KpiValue]:
    """A percentile of durations; ``math.inf`` is one that never ended."""

    def reduce(durations: list[float]) -> KpiValue:
        ended = len(durations) - durations.count(math.inf) - durations.count(-math.inf)
        return KpiValue(percentile(durations, q), ended, len(durations), len(durations))

    return reduce


def quantile_of_sorted(q: float) -> Callable[[list[float]], KpiValue]:
    """:func:`quantile` of durations already in ascending order: no copy, no pass to count."""

    def reduce(ordered: list[float]) -> KpiValue:
        ended = bisect_left(ordered, math.inf) - bisect_right(ordered, -math.inf)
        return KpiValue(percentile_of_sorted(ordered, q), ended, len(ordered), len(ordered))

    return reduce


def average(durations: list[float]) -> KpiValue:
    total = math.fsum(durations)
    return KpiValue(mean(durations), total, len(durations), len(durations))
