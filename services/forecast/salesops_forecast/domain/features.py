"""Feature helpers shared by the deal and lead models: the scales numbers are learned on
(log days, log amounts) and how a feature's raw value reads in a reason."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import numpy as np

from salesops_forecast.domain.learners import Floats
from salesops_forecast.domain.linear_scorer import Feature

DAY = 86_400.0


def timestamps(values: Iterable[datetime | None], n: int) -> Floats:
    """Seconds since the epoch, NaN for an unknown time."""
    return np.fromiter((v.timestamp() if v is not None else math.nan for v in values), float, n)


def numbers(values: Iterable[float | int | None], n: int) -> Floats:
    return np.fromiter((float(v) if v is not None else math.nan for v in values), float, n)


def log_days_since(now: Floats, since: Floats) -> Floats:
    """log(1 + days from ``since`` to ``now``), vectorised; NaN where ``since`` is unknown."""
    result: Floats = np.log1p(np.maximum(now - since, 0.0) / DAY)
    return result


def log_amounts(values: Floats) -> Floats:
    result: Floats = np.log1p(np.maximum(values, 0.0))
    return result


def days_between(later: datetime | None, earlier: datetime | None) -> float:
    if later is None or earlier is None:
        return math.nan
    return max((later - earlier).total_seconds() / DAY, 0.0)


def log_days(days: float) -> float:
    return math.log1p(days) if not math.isnan(days) else math.nan


def log_count(x: float | int | None) -> float:
    return math.log1p(max(float(x), 0.0)) if x is not None else math.nan


def _known(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def category_feature(name: str, label: str) -> Feature:
    return Feature(name, "category", lambda v: f"{label} {v}" if v is not None else f"no {label}")


def number_feature(
    name: str, template: str, unknown: str, *, shown: Callable[[Any], Any] = math.expm1
) -> Feature:
    """A number learned on a log scale (``shown`` undoes it for the words) or, with
    ``shown=float``, as it is."""

    def describe(x: Any) -> str:
        return template.format(shown(x)) if _known(x) else unknown

    return Feature(name, "number", describe)
