"""Feature helpers shared by the deal and lead models: the scales numbers are learned on
(log days, log amounts) and how a feature's raw value reads in a reason."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from salesops_forecast.domain.linear_scorer import Feature

DAY = 86_400.0


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
