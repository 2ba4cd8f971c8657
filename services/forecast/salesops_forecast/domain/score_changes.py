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
    if not ids:
        return []
    now = np.column_stack(scores)
    nan = [np.nan] * len(scores)
    before = np.asarray(
        [[np.nan if b is None else b for b in published.get(key, nan)] for key in ids],
        dtype=np.float64,
    )
    unknown = np.isnan(before)
    moved = np.abs(now - np.where(unknown, 0.0, before)) >= threshold - 1e-12
    flags: list[bool] = np.any(unknown | moved, axis=1).tolist()
    return flags
