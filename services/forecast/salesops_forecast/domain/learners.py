"""The one place scikit-learn is used: fitting a logistic regression and a Platt calibration.
The scorers depend only on the two function types below, so the learner can change (or be
faked) without touching how features are built, scores explained or models chosen."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

Floats = NDArray[np.float64]
# (design matrix, outcomes 0/1, sample weights) -> (coefficients, intercept)
LinearFit = Callable[[sparse.csr_matrix, Floats, Floats], tuple[Floats, float]]
# (raw log-odds, outcomes, weights) -> (slope, intercept) of the calibrated log-odds
Calibrate = Callable[[Floats, Floats, Floats], tuple[float, float]]

# L2 strength on standardized and one-hot features: shrinks rare categories toward the mean.
REGULARIZATION_C = 1.0


def fit_logistic(x: sparse.csr_matrix, y: Floats, w: Floats) -> tuple[Floats, float]:
    model = LogisticRegression(C=REGULARIZATION_C, max_iter=500)
    model.fit(x, y, sample_weight=w)
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])


def fit_platt(raw: Floats, y: Floats, w: Floats) -> tuple[float, float]:
    """Platt scaling: P = σ(a·raw + b) fitted on held-out deals (almost unregularised)."""
    model = LogisticRegression(C=1e6, max_iter=500)
    model.fit(raw.reshape(-1, 1), y, sample_weight=w)
    return float(model.coef_[0][0]), float(model.intercept_[0])


def auc(y: Floats, scores: Floats, w: Floats | None = None) -> float | None:
    """Area under the ROC curve, or None when only one outcome is present."""
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, scores, sample_weight=w))
