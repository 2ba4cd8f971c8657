"""Deal win probabilities for the replay, behind one interface: fit on the deals closed
before a cutoff, score others as of a day.

``LogisticWinOdds`` is this backtest's own small model until the service's win model
(domain/win_model, issue 6 part A) offers the same call: a logistic regression on the
owner, the regional office, the product, the account's sector and the log list price,
L2-regularised (which shrinks owners with few closed deals toward the rest).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from salesops_forecast.backtest.deals import DealTable, Flags
from salesops_forecast.domain.pipeline_model import Array


class WinOdds(Protocol):
    def __call__(
        self, deals: DealTable, *, train: Flags, score: Flags, as_of: np.datetime64
    ) -> Array:
        """P(win) of the ``score`` deals as of ``as_of``, learned from the ``train`` deals
        (all closed before it)."""
        ...


def _features(deals: DealTable, rows: Flags) -> np.ndarray:
    columns = [deals.agent, deals.office, deals.product, deals.sector]
    categorical = np.stack([c[rows] for c in columns], axis=1).astype(object)
    price = np.log(deals.list_price[rows]).astype(object)[:, None]  # scaled in the model
    return np.concatenate([categorical, price], axis=1)


class LogisticWinOdds:
    def __call__(
        self, deals: DealTable, *, train: Flags, score: Flags, as_of: np.datetime64
    ) -> Array:
        del as_of  # no feature of this model changes while a deal is open
        outcomes = deals.won[train]
        if not score.any():
            return np.zeros(0)
        if outcomes.all() or not outcomes.any():
            return np.full(int(score.sum()), float(outcomes.mean()) if len(outcomes) else 0.5)
        model = Pipeline(
            [
                (
                    "encode",
                    ColumnTransformer(
                        [
                            ("labels", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2, 3]),
                            ("price", StandardScaler(), [4]),
                        ],
                    ),
                ),
                ("fit", LogisticRegression(C=0.5, solver="newton-cholesky", max_iter=200)),
            ]
        )
        model.fit(_features(deals, train), outcomes)
        odds: Array = model.predict_proba(_features(deals, score))[:, 1]
        return odds
