"""Stage win probabilities learned from the deals that have already closed.

P(win | reached s) = (won that reached s + α·p̄) / (closed that reached s + α), where p̄ is
the overall win rate: a stage with little history leans on the overall rate instead of
swinging to 0 or 1 on a handful of deals; a stage with no history gets p̄ itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

# How many closed deals' worth of weight the overall win rate carries in every stage.
SHRINKAGE_WEIGHT = Decimal(10)


class NoClosedDeals(Exception):
    """Nothing has been won or lost yet, so there is no win rate to learn from."""


@dataclass(frozen=True)
class StageRecord:
    won: int
    closed: int


@dataclass(frozen=True)
class WinHistory:
    """Closed deals overall and per stage they reached (a deal counts in every stage it saw)."""

    won: int
    closed: int
    by_stage: Mapping[str, StageRecord] = field(default_factory=dict)

    def overall_win_rate(self) -> Decimal:
        if self.closed == 0:
            raise NoClosedDeals("no deal has been won or lost yet")
        return Decimal(self.won) / Decimal(self.closed)


@dataclass(frozen=True)
class StageProbabilities:
    overall: Decimal
    by_stage: Mapping[str, Decimal]

    def of(self, stage: str | None) -> Decimal:
        """A stage never seen among closed deals (or no stage at all) gets the overall rate."""
        if stage is None:
            return self.overall
        return self.by_stage.get(stage, self.overall)


def stage_probabilities(history: WinHistory, open_stages: Iterable[str]) -> StageProbabilities:
    overall = history.overall_win_rate()
    prior = SHRINKAGE_WEIGHT * overall
    by_stage: dict[str, Decimal] = {}
    for stage in sorted(set(open_stages)):
        seen = history.by_stage.get(stage, StageRecord(0, 0))
        by_stage[stage] = (seen.won + prior) / (seen.closed + SHRINKAGE_WEIGHT)
    return StageProbabilities(overall, by_stage)
