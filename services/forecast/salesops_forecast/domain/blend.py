"""Blending forecasts of the same bookings by different methods, with weights from how each
method did on backtest origins (forecasts made as of past period starts, scored against
what was booked).

Weight of a method ∝ 1 / max(WAPE, 2 %)^power over its backtest origins (power 2 is the
scale-free form of Bates and Granger's inverse mean squared error, power 1 plain inverse
WAPE); a method joins the blend once it has been scored on at least two origins where
something was booked. Before any method is, the ``fallback`` methods share the weight
equally.

Trimming: a method whose WAPE is more than a cut-off times the best one's can be given no
weight. Forecasts of the same bookings from the same history make correlated errors, and
for two methods whose errors correlate by ρ, the better one's error being 1/k of the
other's, the variance-minimising weight of the worse one is (1 − ρk) / (1 + k² − 2ρk): none
once k ≥ 1/ρ. Inverse squared weights alone still give such a method a share.

Hyper-parameters out of sample. The weight power and the cut-off (a ``Rule``) are not
fixed: at each origin the rule is chosen among ``RULES`` by a nested rolling origin over
the earlier origins only: for each rule, the blend is replayed at each earlier origin with
weights from the origins before that one, and the rule with the lowest WAPE over those
blends wins (ties go to the earlier rule in ``RULES``, the prior first). Until the blend has
been scored on ``MIN_ORIGINS`` origins, the ``PRIOR`` rule applies: Bates and Granger's
inverse squared error, untrimmed. So what the blend does at an origin depends on nothing
booked on or after it (no look-ahead), in the backtest as in a service run. The blend's
point is Σ wᵢ·pointᵢ; its spread Σ wᵢ·σᵢ (the methods' errors taken as perfectly
correlated: the cautious choice, since they forecast the same bookings from the same
history).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from salesops_forecast.domain.accuracy import wape

MIN_ORIGINS = 2
WAPE_FLOOR = 0.02


@dataclass(frozen=True)
class Rule:
    """The blend's hyper-parameters: weight ∝ 1 / WAPE^power, and none for a method whose
    WAPE is more than ``trim`` times the best one's (``math.inf``: no trimming)."""

    power: int = 2
    trim: float = math.inf

    def describe(self) -> str:
        cut = "none" if math.isinf(self.trim) else f"{self.trim:g}"
        return f"1/WAPE^{self.power}, cut-off {cut}"


PRIOR = Rule()
RULES = (PRIOR, *(Rule(p, t) for p in (2, 1) for t in (1.25, 1.5, 2.0, 3.0)), Rule(1))


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


@dataclass(frozen=True)
class Origin:
    """A past origin: each method's forecast of the period, and what it booked."""

    forecasts: Mapping[str, float]
    actual: float


def backtests(origins: Sequence[Origin]) -> dict[str, Backtest]:
    """Each method's backtest over the origins where it forecast."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for o in origins:
        for method, forecast in o.forecasts.items():
            f, a = out.setdefault(method, ([], []))
            f.append(forecast)
            a.append(o.actual)
    return {m: Backtest(f, a) for m, (f, a) in out.items()}


def backtest_weights(
    tests: Mapping[str, Backtest], *, fallback: Sequence[str], rule: Rule = PRIOR
) -> dict[str, float]:
    """Inverse WAPE^power weights of the methods scored on enough origins; those trimmed
    (more than ``rule.trim`` times the best one's WAPE) are listed with weight 0, so a
    published forecast shows them as considered and left out. ``fallback`` in equal shares
    when no method is scored."""
    errors = {
        name: max(b.wape(), WAPE_FLOOR)
        for name, b in tests.items()
        if b.scored_origins() >= MIN_ORIGINS and math.isfinite(b.wape())
    }
    if not errors:
        return {name: 1 / len(fallback) for name in sorted(fallback)}
    best = min(errors.values())
    inverse = {
        name: 1 / error**rule.power if error <= rule.trim * best else 0.0
        for name, error in errors.items()
    }
    total = sum(inverse.values())
    return {name: v / total for name, v in sorted(inverse.items())}


def chosen_rule(origins: Sequence[Origin], *, fallback: Sequence[str]) -> Rule:
    """The rule whose blend did best at these origins (oldest first), each blended with the
    weights of the origins before it (nested rolling origin); ``PRIOR`` until the blends of
    ``MIN_ORIGINS`` origins with something booked can tell the rules apart."""
    judged = [j for j in range(len(origins)) if origins[j].actual and _weighted(origins[:j])]
    if len(judged) < MIN_ORIGINS:
        return PRIOR
    errors = []
    for rule in RULES:
        points = [
            blend(_estimates(origins[j]), _weights(origins[:j], fallback, rule)).point
            for j in judged
        ]
        errors.append(wape([origins[j].actual for j in judged], points))
    return RULES[min(range(len(RULES)), key=errors.__getitem__)]


def out_of_sample_weights(
    origins: Sequence[Origin], *, fallback: Sequence[str]
) -> tuple[dict[str, float], Rule]:
    """The weights for the next origin from these earlier ones, by the rule they choose."""
    rule = chosen_rule(origins, fallback=fallback)
    return _weights(origins, fallback, rule), rule


def _estimates(origin: Origin) -> list[Estimate]:
    return [Estimate(m, f, 0.0) for m, f in origin.forecasts.items()]


def _weighted(origins: Sequence[Origin]) -> bool:
    """Whether some method has been scored often enough to be weighted by its backtest."""
    return any(b.scored_origins() >= MIN_ORIGINS for b in backtests(origins).values())


def _weights(origins: Sequence[Origin], fallback: Sequence[str], rule: Rule) -> dict[str, float]:
    return backtest_weights(backtests(origins), fallback=fallback, rule=rule)


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
