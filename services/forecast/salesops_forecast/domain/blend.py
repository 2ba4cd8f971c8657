"""Blending forecasts of the same bookings by different methods, with weights from how each
method did on backtest origins (forecasts made as of past period starts, scored against
what was booked).

Weight of a method ∝ 1 / max(WAPE, 2 %)² over its backtest origins (the scale-free form of
Bates and Granger's inverse mean squared error: plain inverse WAPE gave a method with half
the others' error barely more weight than each of them, so the blend stayed near the
average of the weaker ones); a method joins the blend once it has been scored on at least
two origins where something was booked.

Trimming: a method whose WAPE is more than ``TRIM_RATIO`` (1.5) times the best one's gets
no weight. Forecasts of the same bookings from the same history make correlated errors, and
for two methods whose errors correlate by ρ, the better one's error being 1/k of the
other's, the variance-minimising weight of the worse one is (1 − ρk) / (1 + k² − 2ρk): none
once k ≥ 1/ρ. On the Maven replay the four methods' errors correlate by 0.67 to 0.99
(company, team and rep, monthly), so at k ≥ 1.5 the worse method only dilutes the better;
inverse squared weights alone still gave it a share (a method with 1.5 times the error gets
0.44 of the best one's weight). The origins must precede the one forecast: the
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
TRIM_RATIO = 1.5


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
    """Inverse squared WAPE weights of the methods scored on enough origins; those trimmed
    (more than ``TRIM_RATIO`` times the best one's WAPE) are listed with weight 0, so a
    published forecast shows them as considered and left out. ``fallback`` alone (weight 1)
    when no method is scored."""
    errors = {
        name: max(b.wape(), WAPE_FLOOR)
        for name, b in backtests.items()
        if b.scored_origins() >= MIN_ORIGINS and np.isfinite(b.wape())
    }
    if not errors:
        return {fallback: 1.0}
    best = min(errors.values())
    inverse = {
        name: 1 / error**WEIGHT_POWER if error <= TRIM_RATIO * best else 0.0
        for name, error in errors.items()
    }
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
    them (a scope a method could not forecast leaves it out). Estimates of methods weighted
    0 (trimmed) are listed with their points and weight 0."""
    present = [e for e in estimates if weights.get(e.method, 0) > 0]
    if not present:
        raise ValueError("no weighted method forecast this scope")
    total = sum(weights[e.method] for e in present)
    listed = [e for e in estimates if e.method in weights]
    shares = {e.method: weights[e.method] / total for e in listed}
    return Blend(
        point=sum(shares[e.method] * e.point for e in present),
        sigma=sum(shares[e.method] * e.sigma for e in present),
        weights=shares,
        points={e.method: e.point for e in listed},
    )
