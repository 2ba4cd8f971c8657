"""Accuracy measures of forecasts (WAPE, MASE) and of deal probabilities (AUC, Brier score,
calibration table). Pure functions over arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.ArrayLike


def wape(actual: Floats, forecast: Floats) -> float:
    """Σ|actual − forecast| / Σ|actual|: the share of bookings missed or overcalled."""
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    total = float(np.abs(a).sum())
    return float(np.abs(a - f).sum()) / total if total else float("nan")


def naive_scale(history: Floats, *, lag: int = 1) -> float:
    """Mean absolute change over ``lag`` periods of the history: MASE's denominator."""
    h = np.asarray(history, dtype=float)
    if h.size <= lag:
        return float("nan")
    return float(np.abs(h[lag:] - h[:-lag]).mean())


def mase(actual: Floats, forecast: Floats, *, scale: float) -> float:
    """Mean absolute error over the naive forecast's in-sample mean absolute error."""
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if not scale or np.isnan(scale):
        return float("nan")
    return float(np.abs(a - f).mean()) / scale


def auc(outcomes: Floats, scores: Floats) -> float:
    """The probability that a random winner scores above a random loser (ties count half):
    the Mann–Whitney statistic over mid-ranks."""
    y = np.asarray(outcomes, dtype=bool)
    s = np.asarray(scores, dtype=float)
    wins, losses = int(y.sum()), int((~y).sum())
    if not wins or not losses:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_scores = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - wins * (wins + 1) / 2) / (wins * losses))


def brier(outcomes: Floats, probabilities: Floats) -> float:
    y = np.asarray(outcomes, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    deals: int
    mean_probability: float
    win_rate: float


def calibration(
    outcomes: Floats, probabilities: Floats, *, bins: int = 10
) -> Sequence[CalibrationBin]:
    """Deals by predicted probability in equal-width bins: what was predicted, what happened."""
    y = np.asarray(outcomes, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            table.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(inside.sum()),
                    float(p[inside].mean()),
                    float(y[inside].mean()),
                )
            )
    return table
