"""Deal win probability and the chance of closing in the current month and quarter.

The model learns from deals closed before the time it is fitted as of. Each closed deal
is seen at three moments of its life (a fifth, half and four fifths of the way from
creation to close, weight ⅓ each), as an open deal would be seen when scored: its stage then
(from the stages it was seen in), its age and age in stage then, and its owner's and
manager's win rates from the deals closed before then. So the model answers "a deal like
this, open at this age, is won how often?", and never sees a deal's own outcome in its
inputs. A quarter of the closed deals (chosen by id) are held out to calibrate (Platt) and
measure it. With fewer than MIN_CLOSED_DEALS closed deals (or MIN_EACH_OUTCOME of either
outcome), or a model that does not rank the held-out deals, the stage-history
probabilities (domain/probabilities.py) are used instead, and the reasons say so.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID

import numpy as np

from salesops_forecast.domain.close_timing import CloseTiming
from salesops_forecast.domain.facts import DealFacts
from salesops_forecast.domain.features import (
    DAY,
    category_feature,
    days_between,
    log_amounts,
    log_days_since,
    number_feature,
    numbers,
    timestamps,
)
from salesops_forecast.domain.learners import Floats, fit_logistic, fit_platt
from salesops_forecast.domain.linear_scorer import (
    Feature,
    LinearScorer,
    fit_scorer,
    held_out_rows,
)
from salesops_forecast.domain.periods import FiscalPeriod
from salesops_forecast.domain.probabilities import (
    SHRINKAGE_WEIGHT,
    StageProbabilities,
    StageRecord,
    WinHistory,
    stage_probabilities,
)

MIN_CLOSED_DEALS = 40
MIN_EACH_OUTCOME = 10
SNAPSHOTS = (0.2, 0.5, 0.8)
WIN_MODEL = "logistic_regression_platt"
STAGE_HISTORY = "stage_history"


DEAL_FEATURES: tuple[Feature, ...] = (
    category_feature("stage", "stage"),
    category_feature("product", "product"),
    category_feature("industry", "industry"),
    category_feature("country", "country"),
    category_feature("team", "team"),
    category_feature("territory", "territory"),
    number_feature("age", "{:.0f} days since created", "creation date unknown"),
    number_feature("stage_age", "{:.0f} days in stage", "stage entry unknown"),
    number_feature("amount", "amount {:,.0f}", "no amount"),
    number_feature("employees", "{:,.0f} employees at the account", "size unknown"),
    number_feature("revenue", "account revenue {:,.0f}", "revenue unknown"),
    number_feature("owner_rate", "owner's win rate {:.0%}", "no owner", shown=float),
    number_feature("manager_rate", "manager's team win rate {:.0%}", "no manager", shown=float),
    number_feature("activity_recency", "last activity {:.0f} days before", "no activity logged"),
)


@dataclass
class RateHistory:
    """Closed deals per key (owner, manager) in time order: a key's win rate as of any
    time, smoothed toward the overall rate with SHRINKAGE_WEIGHT deals' weight."""

    prior: float
    times: dict[Hashable, list[float]] = field(default_factory=dict)
    wins: dict[Hashable, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, closings: Iterable[tuple[Hashable, datetime, bool]], prior: float) -> RateHistory:
        grouped: dict[Hashable, list[tuple[float, bool]]] = defaultdict(list)
        for key, at, won in closings:
            grouped[key].append((at.timestamp(), won))
        history = cls(prior)
        for key, rows in grouped.items():
            rows.sort()
            history.times[key] = [t for t, _ in rows]
            history.wins[key] = list(np.cumsum([int(w) for _, w in rows]))
        return history

    def rate(self, key: Hashable | None, at: datetime) -> float:
        if key is None:
            return math.nan
        weight = float(SHRINKAGE_WEIGHT)
        times = self.times.get(key)
        closed = bisect.bisect_left(times, at.timestamp()) if times else 0
        won = self.wins[key][closed - 1] if closed else 0
        return (won + weight * self.prior) / (closed + weight)

    def rates_at(self, keys: Sequence[Hashable | None], at: datetime) -> list[float]:
        """Many keys' rates at one time (scoring): each key computed once."""
        known: dict[Hashable | None, float] = {}
        out = []
        for key in keys:
            if key not in known:
                known[key] = self.rate(key, at)
            out.append(known[key])
        return out


@dataclass(frozen=True)
class Records:
    """What the model knows beyond a deal: owners' and managers' win records as of any time,
    and each product's typical (median) amount."""

    owner: RateHistory
    manager: RateHistory
    typical_amount: Mapping[str | None, float] = field(default_factory=dict)

    def amounts(self, deals: Sequence[DealFacts]) -> list[float | None]:
        """Each deal's amount, but the typical amount of its product where the amount is not
        positive: many CRMs (and the Maven sample) record a lost deal's close value, 0, as its
        amount, which says how it ended, not how big it was, and would leak the outcome."""
        typical = self.typical_amount
        return [
            d.amount
            if d.amount is not None and d.amount > 0
            else typical.get(d.product, typical.get(None))
            if d.amount is not None
            else None
            for d in deals
        ]


def _typical_amounts(deals: Sequence[DealFacts]) -> dict[str | None, float]:
    by_product: dict[str | None, list[float]] = defaultdict(list)
    for d in deals:
        if d.amount is not None and d.amount > 0:
            by_product[d.product].append(d.amount)
            by_product[None].append(d.amount)
    return {k: float(np.median(v)) for k, v in by_product.items()}


def _records(deals: Sequence[DealFacts], closed: Sequence[DealFacts], prior: float) -> Records:
    owners: list[tuple[Hashable, datetime, bool]] = []
    managers: list[tuple[Hashable, datetime, bool]] = []
    for d in closed:
        if d.closed_at is None:
            continue
        if d.owner_id is not None:
            owners.append((d.owner_id, d.closed_at, d.outcome == "won"))
        if d.manager_id is not None:
            managers.append((d.manager_id, d.closed_at, d.outcome == "won"))
    return Records(
        RateHistory.of(owners, prior), RateHistory.of(managers, prior), _typical_amounts(deals)
    )


def deal_columns(
    deals: Sequence[DealFacts], times: Sequence[datetime], histories: Records
) -> dict[str, Any]:
    """The model's inputs for each deal as seen at its time (numbers vectorised: scoring
    100,000 deals must stay well under a second here)."""
    n = len(deals)
    now = timestamps(times, n)
    stages = [d.stage_at(t) for d, t in zip(deals, times, strict=True)]
    activity = timestamps((d.last_activity_at for d in deals), n)
    activity[activity > now] = math.nan  # not known yet at that time
    if len(set(times)) == 1:
        owner_rate = histories.owner.rates_at([d.owner_id for d in deals], times[0])
        manager_rate = histories.manager.rates_at([d.manager_id for d in deals], times[0])
    else:
        pairs = zip(deals, times, strict=True)
        owner_rate, manager_rate = [], []
        for d, t in pairs:
            owner_rate.append(histories.owner.rate(d.owner_id, t))
            manager_rate.append(histories.manager.rate(d.manager_id, t))
    return {
        "stage": [s for s, _ in stages],
        "product": [d.product for d in deals],
        "industry": [d.industry.lower() if d.industry else None for d in deals],
        "country": [d.country for d in deals],
        "team": [d.team for d in deals],
        "territory": [d.territory for d in deals],
        "age": log_days_since(now, timestamps((d.created_at for d in deals), n)),
        "stage_age": log_days_since(now, timestamps((e for _, e in stages), n)),
        "amount": log_amounts(numbers(histories.amounts(deals), n)),
        "employees": log_amounts(numbers((d.employees for d in deals), n)),
        "revenue": log_amounts(numbers((d.annual_revenue for d in deals), n)),
        "owner_rate": np.asarray(owner_rate, dtype=np.float64),
        "manager_rate": np.asarray(manager_rate, dtype=np.float64),
        "activity_recency": log_days_since(now, activity),
    }


def _snapshots(closed: Sequence[DealFacts]) -> tuple[list[DealFacts], list[datetime], Floats]:
    deals, times, weights = [], [], []
    for d in closed:
        assert d.closed_at is not None
        if d.created_at is None or d.created_at >= d.closed_at:
            deals.append(d)
            times.append(d.closed_at - timedelta(seconds=1))
            weights.append(1.0)
            continue
        life = d.closed_at - d.created_at
        for share in SNAPSHOTS:
            deals.append(d)
            times.append(d.created_at + life * share)
            weights.append(1.0 / len(SNAPSHOTS))
    return deals, times, np.asarray(weights)


@dataclass(frozen=True)
class DealModel:
    """What scores deals as of a time: the win model, or the stage history it falls back to."""

    name: str  # WIN_MODEL or STAGE_HISTORY
    as_of: datetime
    closed_deals: int
    won_deals: int
    timing: CloseTiming
    stages: StageProbabilities
    history: WinHistory
    scorer: LinearScorer | None = None
    histories: Records | None = None
    why_fallback: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.name,
            "closed_deals": self.closed_deals,
            "won_deals": self.won_deals,
            "won_deals_timed": len(self.timing.won_days),
        }
        if self.scorer is not None:
            out.update(self.scorer.quality)
        if self.why_fallback:
            out["fallback_reason"] = self.why_fallback
        return out


def _win_history(closed: Sequence[DealFacts]) -> WinHistory:
    won = sum(1 for d in closed if d.outcome == "won")
    by_stage: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in closed:
        for stage in {s for s, _ in d.stages}:
            by_stage[stage][0] += d.outcome == "won"
            by_stage[stage][1] += 1
    return WinHistory(
        won=won,
        closed=len(closed),
        by_stage={s: StageRecord(w, n) for s, (w, n) in by_stage.items()},
    )


def fit_deal_model(deals: Sequence[DealFacts], *, as_of: datetime) -> DealModel:
    """Learn from the deals closed by ``as_of``. Raises NoClosedDeals when there are none."""
    closed = [d for d in deals if d.closed_before(as_of)]
    history = _win_history(closed)
    prior = float(history.overall_win_rate())
    open_stages = {d.stage_at(as_of)[0] for d in deals if d.open_at(as_of)} - {None}
    base = DealModel(
        name=STAGE_HISTORY,
        as_of=as_of,
        closed_deals=history.closed,
        won_deals=history.won,
        timing=CloseTiming.learn(
            days_between(d.closed_at, d.created_at) for d in closed if d.outcome == "won"
        ),
        stages=stage_probabilities(history, (s for s in open_stages if s is not None)),
        history=history,
    )
    lost = history.closed - history.won
    if history.closed < MIN_CLOSED_DEALS or min(history.won, lost) < MIN_EACH_OUTCOME:
        why = (
            f"{history.closed} closed deals ({history.won} won): the model needs "
            f"{MIN_CLOSED_DEALS}, at least {MIN_EACH_OUTCOME} won and {MIN_EACH_OUTCOME} lost"
        )
        return replace(base, why_fallback=why)
    histories = _records(deals, closed, prior)
    rows, times, weight = _snapshots(closed)
    outcome = np.asarray([float(d.outcome == "won") for d in rows])
    held_out = held_out_rows([d.deal_id for d in rows])
    if not (held_out.any() and (~held_out).any()) or len(set(outcome[held_out])) < 2:
        return replace(base, why_fallback="too few closed deals to hold out for calibration")
    scorer = fit_scorer(
        DEAL_FEATURES,
        deal_columns(rows, times, histories),
        outcome,
        weight,
        held_out,
        learn=fit_logistic,
        calibrate=fit_platt,
    )
    if scorer is None:
        return replace(
            base, why_fallback="the model did not rank held-out deals better than chance"
        )
    return replace(base, name=WIN_MODEL, scorer=scorer, histories=histories)


@dataclass(frozen=True)
class DealScores:
    """Scores of deals as of one time, row by row."""

    deal_ids: list[UUID]
    win: Floats
    close_in: dict[str, Floats]  # period kind (month, quarter) -> P(won within it)
    reasons: list[list[str]]


def _remaining_days(as_of: datetime, period: FiscalPeriod) -> float:
    end = datetime.combine(period.ends_on + timedelta(days=1), time(), tzinfo=as_of.tzinfo or UTC)
    return max((end - as_of).total_seconds() / DAY, 0.0)


def _close_within(
    model: DealModel, deals: Sequence[DealFacts], as_of: datetime, period: FiscalPeriod
) -> Floats:
    """P(closes within the period | it will be won). Without any timed won deal, a deal's
    expected close date decides (an undated deal counts as closing in the current period,
    as in the pipeline forecast)."""
    if model.timing.known:
        created = timestamps((d.created_at for d in deals), len(deals))
        ages = np.maximum(as_of.timestamp() - created, 0.0) / DAY
        remaining = np.full(len(deals), _remaining_days(as_of, period))
        return model.timing.within(ages, remaining)
    return np.asarray(
        [
            1.0 if d.expected_close_date is None or period.contains(d.expected_close_date) else 0.0
            for d in deals
        ]
    )


def _stage_reasons(model: DealModel, stage: str | None) -> list[str]:
    seen = model.history.by_stage.get(stage) if stage else None
    if seen is not None and stage in model.stages.by_stage:
        said = f"stage {stage}: {seen.won} of {seen.closed} closed deals that reached it were won"
    else:
        said = f"overall win rate: {model.won_deals} of {model.closed_deals} closed deals won"
    return [said, f"stage-history fallback: {model.why_fallback}"]


def score_deals(
    model: DealModel,
    deals: Sequence[DealFacts],
    *,
    as_of: datetime,
    periods: Sequence[FiscalPeriod],
    reasons: bool = True,
) -> DealScores:
    """P(win), P(won within each period) and the main reasons of each deal as of ``as_of``
    (no reasons, and faster, with ``reasons=False``)."""
    said: list[list[str]]
    if model.scorer is not None and model.histories is not None:
        columns = deal_columns(deals, [as_of] * len(deals), model.histories)
        scored = model.scorer.score(columns)
        win = scored.probability
        said = model.scorer.reasons(scored, columns) if reasons else [[] for _ in deals]
    else:
        stages = [d.stage_at(as_of)[0] for d in deals]
        win = np.asarray([float(model.stages.of(s)) for s in stages])
        said = [_stage_reasons(model, s) if reasons else [] for s in stages]
    close_in: dict[str, Floats] = {
        p.kind: win * _close_within(model, deals, as_of, p) for p in periods
    }
    return DealScores([d.deal_id for d in deals], win, close_in, said)


def fit_and_score(
    deals: Sequence[DealFacts],
    *,
    as_of: datetime,
    periods: Sequence[FiscalPeriod],
    reasons: bool = True,
) -> tuple[DealModel, DealScores]:
    """For backtests: learn from the deals closed by ``as_of`` and score the deals open at
    ``as_of`` as they were then (their stage, age and owners' records as of that time)."""
    model = fit_deal_model(deals, as_of=as_of)
    open_then = [d for d in deals if d.open_at(as_of)]
    scores = score_deals(model, open_then, as_of=as_of, periods=periods, reasons=reasons)
    return model, scores
