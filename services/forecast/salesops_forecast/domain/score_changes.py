"""When a new score is worth publishing: the first score of a deal or lead, or one that
moved by at least the threshold (absolute) from the score last published. Small moves are
kept (the API shows them) but not published, so consumers are not flooded with noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

import numpy as np

from salesops_forecast.domain.learners import Floats

DEFAULT_THRESHOLD = 0.02


def to_publish(
    ids: Sequence[UUID],
    scores: Sequence[Floats],
    published: Mapping[UUID, Sequence[float | None]],
    *,
    threshold: float,
) -> list[bool]:
    """Per id, whether any of its scores (e.g. P(win), P(close in quarter)) moved
    materially from what was last published for it."""
    now = np.column_stack(scores) if len(ids) else np.empty((0, len(scores)))
    out = []
    for i, key in enumerate(ids):
        before = published.get(key)
        if before is None or any(b is None for b in before):
            out.append(True)
            continue
        moved = np.abs(now[i] - np.asarray(before, dtype=np.float64))
        out.append(bool((moved >= threshold - 1e-12).any()))
    return out
