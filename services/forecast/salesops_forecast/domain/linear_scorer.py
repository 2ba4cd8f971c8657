"""A calibrated, explainable scorer: logistic regression on one-hot categories and
standardized numbers, Platt-calibrated on held-out rows.

Because the calibrated log-odds are linear in the features, each feature's contribution to
one row's score, relative to the average row of the training data, is exact: it is what
the reasons say ("lead source webinar: 2.1× the average odds"). Scoring is a table lookup
per category and a multiply per number, so it costs O(rows × features), no design matrix.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import numpy as np
from numpy.typing import NDArray
from scipy import sparse  # type: ignore[import-untyped]

from salesops_forecast.domain.learners import Calibrate, Floats, LinearFit, auc

# A category seen fewer times than this in training is pooled into "other".
MIN_CATEGORY_ROWS = 5
MAX_LEVELS = 40
OTHER = "(other)"
NONE = "(none)"
# One row in HOLD_OUT_EVERY (chosen by a hash of its id) calibrates and measures the model.
HOLD_OUT_EVERY = 4
# A reason is worth telling when it moves the odds by at least this factor either way.
REASON_FROM = 1.1


@dataclass(frozen=True)
class Feature:
    """A model input. Categories are strings (None = unknown); numbers are floats (NaN =
    unknown), already on the scale the model uses (e.g. log days); ``describe`` renders the
    raw value in words for reasons."""

    name: str
    kind: Literal["category", "number"]
    describe: Callable[[Any], str]


Columns = Mapping[str, Sequence[Any] | NDArray[Any]]


@dataclass(frozen=True)
class _Category:
    levels: Mapping[str, int]
    coefs: Floats  # per level, centred on the training mean

    def codes(self, values: Sequence[Any] | NDArray[Any]) -> NDArray[np.intp]:
        other = self.levels.get(OTHER, len(self.levels))
        get = self.levels.get
        return np.fromiter(
            (get(NONE if v is None else str(v), other) for v in values),
            dtype=np.intp,
            count=len(values),
        )


@dataclass(frozen=True)
class _Number:
    mean: float
    std: float
    coef: float
    missing_coef: float
    missing_share: float

    def contribution(self, values: Sequence[Any] | NDArray[Any]) -> Floats:
        x = np.asarray(values, dtype=np.float64)
        missing = np.isnan(x)
        z = np.where(missing, 0.0, (x - self.mean) / self.std)
        return self.coef * z + self.missing_coef * (missing - self.missing_share)


@dataclass(frozen=True)
class Scored:
    probability: Floats
    contributions: Floats  # rows × features, calibrated log-odds relative to the average row


@dataclass(frozen=True)
class LinearScorer:
    features: Sequence[Feature]
    categories: Mapping[str, _Category]
    numbers: Mapping[str, _Number]
    slope: float
    intercept: float  # calibrated log-odds of the average training row
    quality: Mapping[str, Any] = field(default_factory=dict)

    def score(self, columns: Columns) -> Scored:
        parts = []
        for f in self.features:
            if f.kind == "category":
                cat = self.categories[f.name]
                with_other = np.append(cat.coefs, 0.0)  # a level never seen: average
                parts.append(with_other[cat.codes(columns[f.name])])
            else:
                parts.append(self.numbers[f.name].contribution(columns[f.name]))
        contributions = self.slope * np.column_stack(parts)
        logit = self.intercept + contributions.sum(axis=1)
        return Scored(1.0 / (1.0 + np.exp(-logit)), contributions)

    def reasons(self, scored: Scored, columns: Columns, *, top: int = 3) -> list[list[str]]:
        """Per row, the features that moved its odds most, in words, strongest first."""
        c = scored.contributions
        top = min(top, c.shape[1])
        strength = np.abs(c)
        best = np.argpartition(-strength, top - 1, axis=1)[:, :top]
        ranked = np.argsort(-np.take_along_axis(strength, best, axis=1), axis=1)
        order = np.take_along_axis(best, ranked, axis=1)
        logs = np.take_along_axis(c, order, axis=1)
        worth = np.abs(logs) >= math.log(REASON_FROM)
        said: list[list[str]] = [[] for _ in range(len(c))]
        shown: dict[str, Sequence[Any]] = {}
        for k in range(top):
            told = worth[:, k] if k == 0 else worth[:, k] & worth[:, k - 1]
            features, factors = order[:, k].tolist(), np.exp(logs[:, k]).tolist()
            for row in np.flatnonzero(told).tolist():
                f = self.features[features[row]]
                if f.name not in shown:
                    values = columns[f.name]
                    shown[f.name] = values.tolist() if isinstance(values, np.ndarray) else values
                words = f.describe(shown[f.name][row])
                said[row].append(f"{words}: {factors[row]:.1f}× the average odds")
        return said


def held_out_rows(ids: Sequence[UUID]) -> NDArray[np.bool_]:
    """The rows held out for calibration: chosen by a hash of the deal's or lead's id, so a
    deal's snapshots stay together and sequential or patterned ids spread evenly."""
    return np.asarray([zlib.crc32(i.bytes) % HOLD_OUT_EVERY == 0 for i in ids], dtype=bool)


def _levels(values: Sequence[Any] | NDArray[Any]) -> dict[str, int]:
    counts = Counter(NONE if v is None else str(v) for v in values)
    kept = [v for v, n in counts.most_common(MAX_LEVELS) if n >= MIN_CATEGORY_ROWS]
    levels = {v: i for i, v in enumerate(kept)}
    if len(kept) < len(counts):
        levels[OTHER] = len(levels)
    return levels


@dataclass
class _Design:
    blocks: list[sparse.csr_matrix] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    width: int = 0

    def add(self, block: sparse.csr_matrix) -> None:
        self.blocks.append(block)
        self.spans.append((self.width, self.width + block.shape[1]))
        self.width += block.shape[1]


def _one_hot(codes: NDArray[np.intp], width: int) -> sparse.csr_matrix:
    n = len(codes)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, width))


@dataclass(frozen=True)
class _Prepared:
    levels: dict[str, dict[str, int]]
    stats: dict[str, tuple[float, float, float]]  # mean, std, share missing


def _prepare(features: Sequence[Feature], columns: Columns) -> _Prepared:
    levels, stats = {}, {}
    for f in features:
        if f.kind == "category":
            levels[f.name] = _levels(columns[f.name])
            continue
        x = np.asarray(columns[f.name], dtype=np.float64)
        known = x[~np.isnan(x)]
        mean = float(known.mean()) if len(known) else 0.0
        std = float(known.std()) if len(known) > 1 else 0.0
        stats[f.name] = (mean, std if std > 1e-9 else 1.0, float(np.isnan(x).mean()))
    return _Prepared(levels, stats)


def _design(features: Sequence[Feature], columns: Columns, prep: _Prepared) -> _Design:
    design = _Design()
    for f in features:
        if f.kind == "category":
            levels = prep.levels[f.name]
            cat = _Category(levels, np.zeros(len(levels)))
            design.add(_one_hot(cat.codes(columns[f.name]), len(levels) + 1))
            continue
        mean, std, _ = prep.stats[f.name]
        x = np.asarray(columns[f.name], dtype=np.float64)
        missing = np.isnan(x)
        z = np.where(missing, 0.0, (x - mean) / std)
        design.add(sparse.csr_matrix(np.column_stack([z, missing.astype(np.float64)])))
    return design


def _unpack(
    features: Sequence[Feature],
    design: _Design,
    prep: _Prepared,
    coef: Floats,
    x: sparse.csr_matrix,
) -> tuple[dict[str, _Category], dict[str, _Number], float]:
    """Coefficients per feature, each centred on its training mean (so a row's contribution
    is relative to the average row); returns the shift the intercept absorbs."""
    categories, numbers, shift = {}, {}, 0.0
    for f, (lo, hi) in zip(features, design.spans, strict=True):
        block = coef[lo:hi]
        if f.kind == "category":
            counts = np.asarray(x[:, lo:hi].sum(axis=0)).ravel()
            mean = float(block @ counts / max(counts.sum(), 1.0))
            shift += mean
            n_levels = hi - lo - 1
            categories[f.name] = _Category(prep.levels[f.name], block[:n_levels] - mean)
        else:
            # Standardized values average 0 over training rows; only the missing flag shifts.
            mean, std, share = prep.stats[f.name]
            shift += float(block[1] * share)
            numbers[f.name] = _Number(mean, std, float(block[0]), float(block[1]), share)
    return categories, numbers, shift


def fit_scorer(
    features: Sequence[Feature],
    columns: Columns,
    outcome: Floats,
    weight: Floats,
    held_out: NDArray[np.bool_],
    *,
    learn: LinearFit,
    calibrate: Calibrate,
) -> LinearScorer | None:
    """Fit on the rows not held out, calibrate on the held-out ones. None when the model
    does not rank the held-out rows at all (calibration slope ≤ 0): it knows nothing."""
    train = ~held_out
    prep = _prepare(features, _rows(columns, train))
    design = _design(features, columns, prep)
    x = sparse.hstack(design.blocks, format="csr")
    coef, intercept = learn(x[train], outcome[train], weight[train])
    raw = np.asarray(x @ coef).ravel() + intercept
    slope, offset = calibrate(raw[held_out], outcome[held_out], weight[held_out])
    if slope <= 0:
        return None
    categories, numbers, shift = _unpack(features, design, prep, coef, x[train])
    calibrated = slope * raw[held_out] + offset
    quality = {
        "training_rows": int(train.sum()),
        "held_out_rows": int(held_out.sum()),
        "held_out_auc": auc(outcome[held_out], calibrated, weight[held_out]),
        "held_out_brier": _brier(outcome[held_out], calibrated, weight[held_out]),
    }
    return LinearScorer(
        features=features,
        categories=categories,
        numbers=numbers,
        slope=slope,
        intercept=slope * (intercept + shift) + offset,
        quality=quality,
    )


def _brier(y: Floats, logit: Floats, w: Floats) -> float:
    p = 1.0 / (1.0 + np.exp(-logit))
    return float(np.average((p - y) ** 2, weights=w))


def _rows(columns: Columns, mask: NDArray[np.bool_]) -> dict[str, Any]:
    idx = np.flatnonzero(mask).tolist()
    return {k: [v[i] for i in idx] for k, v in columns.items()}
