"""Scoring a replay: WAPE and MASE per method and scope kind, and the deal win
probabilities on a time-based holdout (AUC, Brier score, calibration table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from salesops_forecast.backtest.deals import DealTable, Flags
from salesops_forecast.backtest.replay import BLEND, Replay, methods
from salesops_forecast.backtest.win_odds import WinOdds
from salesops_forecast.domain.accuracy import (
    CalibrationBin,
    auc,
    brier,
    calibration,
    mase,
    naive_scale,
    wape,
)
from salesops_forecast.domain.pipeline_model import Array

SCOPE_KINDS = ("company", "team", "rep")
# The baselines the target is set against (seasonal naive is reported, not targeted).
TARGET_BASELINES = ("naive", "mean_3", "stage_weighted")
TARGET_REDUCTION = 0.30


@dataclass(frozen=True)
class Score:
    wape: float
    mase: float


def scores(result: Replay) -> dict[str, dict[str, Score]]:
    """method → scope kind → score. WAPE pools every scope of the kind and every origin;
    MASE is the mean over the kind's scopes, each scaled by the mean absolute change of its
    own bookings from period to period over the whole replay."""
    actual = result.actuals()
    kinds = np.array([kind for kind, _ in result.scopes.names])
    out: dict[str, dict[str, Score]] = {}
    for method in methods(result):
        forecast = result.method_forecasts(method)
        out[method] = {}
        for kind in SCOPE_KINDS:
            cols = np.flatnonzero(kinds == kind)
            per_scope = [
                mase(actual[:, c], forecast[:, c], scale=naive_scale(result.series[c]))
                for c in cols
            ]
            finite = [m for m in per_scope if np.isfinite(m)]
            out[method][kind] = Score(
                wape(actual[:, cols], forecast[:, cols]),
                float(np.mean(finite)) if finite else float("nan"),
            )
    return out


@dataclass(frozen=True)
class Target:
    blend: float
    baseline: str
    baseline_wape: float

    @property
    def reduction(self) -> float:
        return 1 - self.blend / self.baseline_wape

    @property
    def met(self) -> bool:
        return self.reduction >= TARGET_REDUCTION


def target(table: dict[str, dict[str, Score]]) -> Target:
    """The blend's company WAPE next to the best of the target's baselines."""
    best = min(TARGET_BASELINES, key=lambda m: table[m]["company"].wape)
    return Target(table[BLEND]["company"].wape, best, table[best]["company"].wape)


@dataclass(frozen=True)
class Measured:
    scored: int
    auc: float
    brier: float
    base_rate_brier: float

    @classmethod
    def of(cls, outcomes: Flags, p: Array, base_rate: float) -> Measured:
        return cls(
            len(outcomes),
            auc(outcomes, p),
            brier(outcomes, p),
            brier(outcomes, np.full(len(outcomes), base_rate)),
        )


@dataclass(frozen=True)
class Holdout:
    cutoff: np.datetime64
    trained_on: int
    model: str  # what answered: the win odds' own description
    held: Measured  # every deal closed on or after the cutoff
    open_then: Measured  # those of them already engaged (open) at the cutoff
    calibration: Sequence[CalibrationBin]


def holdout(deals: DealTable, *, cutoff: np.datetime64, win_odds: WinOdds) -> Holdout:
    """Fit on the deals closed before ``cutoff``, score those closed on or after it, as of
    the later of the cutoff and their engagement."""
    engaged = ~np.isnat(deals.engaged)
    train = deals.closed_before(cutoff) & engaged
    test = (deals.closed >= cutoff) & engaged
    p = win_odds(deals, train=train, score=test, as_of=cutoff)
    outcomes = deals.won[test]
    base_rate = float(deals.won[train].mean())
    open_then = deals.engaged[test] < cutoff
    return Holdout(
        cutoff,
        int(train.sum()),
        win_odds.describe(),
        Measured.of(outcomes, p, base_rate),
        Measured.of(outcomes[open_then], p[open_then], base_rate),
        calibration(outcomes, p),
    )
