"""How one group's observations become a value: the shapes every KPI is one of."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from salesops_metrics.domain.kpis import KpiValue
from salesops_metrics.domain.stats import mean, percentile, ratio

T = TypeVar("T")


def share(flags: list[bool]) -> KpiValue:
    """True ones / all; null with none."""
    hits = sum(flags)
    return KpiValue(ratio(hits, len(flags)), hits, len(flags), len(flags))


def count(items: list[T]) -> KpiValue:
    return KpiValue(len(items), len(items), None, len(items))


def amount_share(pairs: list[tuple[Decimal, Decimal]]) -> KpiValue:
    """Σ part / Σ whole over (part, whole) amounts."""
    part = sum((p for p, _ in pairs), Decimal(0))
    whole = sum((w for _, w in pairs), Decimal(0))
    value = float(part / whole) if whole else None
    return KpiValue(value, float(part), float(whole), len(pairs))


def amount_total(amounts: list[Decimal]) -> KpiValue:
    total = sum(amounts, Decimal(0))
    return KpiValue(float(total), float(total), None, len(amounts))


def quantile(q: float) -> Callable[[list[float]], KpiValue]:
    """A percentile of durations; ``math.inf`` is one that never ended."""

    def reduce(durations: list[float]) -> KpiValue:
        ended = sum(1 for d in durations if not math.isinf(d))
        return KpiValue(percentile(durations, q), ended, len(durations), len(durations))

    return reduce


def average(durations: list[float]) -> KpiValue:
    total = math.fsum(durations)
    return KpiValue(mean(durations), total, len(durations), len(durations))
