"""When a deal that will be won closes: learned from how long won deals took.

With T the days from creation to win of the won deals, a deal of age a that will be won
closes within the next r days with probability

    P(a < T ≤ a + r | T > a) ≈ (#{a < T ≤ a + r} + α·q(r)) / (#{T > a} + α),

where q(r) = #{T ≤ r} / #won is the chance of a new deal, and α = 5 pseudo-deals pull an
estimate resting on few won deals toward it (a deal older than every won deal gets q(r)).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from salesops_forecast.domain.learners import Floats

SMOOTHING_DEALS = 5.0


@dataclass(frozen=True)
class CloseTiming:
    won_days: Floats  # sorted

    @classmethod
    def learn(cls, won_days: Iterable[float]) -> CloseTiming:
        return cls(np.sort(np.fromiter((d for d in won_days if d >= 0), dtype=np.float64)))

    @property
    def known(self) -> bool:
        return len(self.won_days) > 0

    def within(self, age_days: Floats, remaining_days: Floats) -> Floats:
        """P(closes within ``remaining_days`` | it will be won, it is ``age_days`` old);
        an unknown age (NaN) counts as a new deal."""
        d = self.won_days
        age = np.where(np.isnan(age_days), 0.0, np.maximum(age_days, 0.0))
        remaining = np.maximum(remaining_days, 0.0)
        older = np.searchsorted(d, age, side="right")
        closing = np.searchsorted(d, age + remaining, side="right") - older
        after = len(d) - older
        new_deal = np.searchsorted(d, remaining, side="right") / len(d)
        result: Floats = (closing + SMOOTHING_DEALS * new_deal) / (after + SMOOTHING_DEALS)
        return result
