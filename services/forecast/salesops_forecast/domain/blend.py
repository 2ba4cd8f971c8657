"""Blending forecasts of the same bookings by different methods, with weights from how each
method did on backtest origins (forecasts made as of past period starts, scored against
what was booked).

Weight of a method ∝ 1 / max(WAPE, 2 %)² over its backtest origins (the scale-free form of
Bates and Granger's inverse mean squared error: plain inverse WAPE gave a method with half
the others' error barely more weight than each of them, so the blend stayed near the
average of the weaker ones); a method joins the blend once it has been scored on at least
two origins where something was booked. The origins must precede the one forecast: the
callers pass only earlier origins (no look-ahead). The blend's
point is Σ wᵢ·pointᵢ; its spread Σ wᵢ·σᵢ (the methods' errors taken as perfectly
correlated: the cautious choice, since they forecast the same bookings from the same
history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from salesops_forecast.domain.accuracy import wape

MIN_ORIGINS = 2
WAPE_FLOOR = 0.02
WEIGHT_POWER = 2


@dataclass(frozen=True)
class Estimate:
    """One method's forecast of a period's bookings."""

    method: str
    point: float
    sigma: float


@dataclass(frozen=True)
class Backtest:
    """A method's forecasts at past origins next to what was booked."""

    forecasts: Sequence[float]
    actuals: Sequence[float]

    def scored_origins(self) -> int:
        return sum(1 for a in self.actuals if a)

    def wape(self) -> float:
        return wape(self.actuals, self.forecasts)


def backtest_weights(backtests: Mapping[str, Backtest], *, fallback: str) -> dict[str, float]:
    """Inverse squared WAPE weights of the methods scored on enough origins; ``fallback``
    alone (weight 1) when none is."""
    inverse = {
        name: 1 / max(b.wape(), WAPE_FLOOR) ** WEIGHT_POWER
        for name, b in backtests.items()
        if b.scored_origins() >= MIN_ORIGINS and np.isfinite(b.wape())
    }
    if not inverse:
        return {fallback: 1.0}
    total = sum(inverse.values())
    return {name: v / total for name, v in sorted(inverse.items())}


@dataclass(frozen=True)
class Blend:
    point: float
    sigma: float
    weights: Mapping[str, float]
    points: Mapping[str, float]


def blend(estimates: Sequence[Estimate], weights: Mapping[str, float]) -> Blend:
    """The weighted forecast of the estimates that have a weight, weights renormalised over
    them (a scope a method could not forecast leaves it out)."""
    present = [e for e in estimates if weights.get(e.method, 0) > 0]
    if not present:
        raise ValueError("no weighted method forecast this scope")
    total = sum(weights[e.method] for e in present)
    shares = {e.method: weights[e.method] / total for e in present}
    return Blend(
        point=sum(shares[e.method] * e.point for e in present),
        sigma=sum(shares[e.method] * e.sigma for e in present),
        weights=shares,
        points={e.method: e.point for e in present},
    )
