"""Deal win probabilities for the replay, behind one interface: fit on the deals closed
before a cutoff, score others as of a day.

``ServiceWinOdds`` is the forecast service's own deal model (domain/win_probability.py),
fed the backtest's deal table as the service would see the Maven sample (as
salesops_cli.maven loads it): the agent is the owner, the agent's manager the manager, the
regional office the team, the account's sector the industry. A deal closed before the day
is seen closed, with its close value as its amount (0 for a lost deal, which the model reads
as its product's typical amount); a deal open then is seen open, in stage Engaging since its
engage date, with its product's list price as its amount. The table's days are whole days:
a day's events are stamped at noon UTC and "as of day d" is midnight starting d, so a deal
closed on d is still open then (as in domain/method, which the replay forecasts with).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

import numpy as np

from salesops_forecast.backtest.deals import DealTable, Flags
from salesops_forecast.domain.facts import DealFacts
from salesops_forecast.domain.pipeline_model import Array
from salesops_forecast.domain.win_probability import DealModel, fit_deal_model, score_deals

OPEN_STAGE = "Engaging"


class WinOdds(Protocol):
    def __call__(
        self, deals: DealTable, *, train: Flags, score: Flags, as_of: np.datetime64
    ) -> Array:
        """P(win) of the ``score`` deals as of ``as_of`` (a deal engaged later: as of its
        engagement), learned from the ``train`` deals (all closed before it)."""
        ...

    def describe(self) -> str:
        """Which model answered the latest call, in words for the report."""
        ...


def _midnight(day: np.datetime64) -> datetime:
    d: date = day.astype(date)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _noon(day: np.datetime64) -> datetime:
    return _midnight(day) + timedelta(hours=12)


def _person(kind: str, name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"maven:{kind}:{name}")


def deal_facts(deals: DealTable, rows: Flags, as_of: np.datetime64) -> list[DealFacts]:
    """The ``rows`` deals (all engaged) as the service would have seen them as of ``as_of``."""
    closed_then = deals.closed_before(as_of)
    out = []
    for i in np.flatnonzero(rows):
        created = _noon(deals.engaged[i])
        facts = DealFacts(
            deal_id=UUID(int=int(i) + 1),
            outcome="open",
            stage=OPEN_STAGE,
            stage_entered_at=created,
            stages=((OPEN_STAGE, created),),
            amount=float(deals.list_price[i]),
            currency="USD",
            product=str(deals.product[i]),
            created_at=created,
            owner_id=_person("rep", str(deals.agent[i])),
            manager_id=(
                _person("manager", str(deals.manager[i])) if deals.manager is not None else None
            ),
            team=str(deals.office[i]),
            industry=str(deals.sector[i]),
        )
        if closed_then[i]:
            closed_at = _noon(deals.closed[i])
            stage = "Won" if deals.won[i] else "Lost"
            facts = replace(
                facts,
                outcome="won" if deals.won[i] else "lost",
                stage=stage,
                stage_entered_at=closed_at,
                stages=(*facts.stages, (stage, closed_at)),
                amount=float(deals.value[i]),
                closed_at=closed_at,
            )
        out.append(facts)
    return out


class ServiceWinOdds:
    """The service's deal model. ``last_model`` is the model of the latest call (which model
    answered: the win model or its stage-history fallback)."""

    last_model: DealModel | None = None

    def describe(self) -> str:
        m = self.last_model
        if m is None:
            return "the forecast service's deal model (not fitted yet)"
        said = f"the forecast service's deal model, `{m.name}`"
        if m.scorer is not None:
            said += f" (held-out AUC {m.scorer.quality['held_out_auc']:.3f} inside its training)"
        if m.why_fallback:
            said += f" (stage-history fallback: {m.why_fallback})"
        return said

    def __call__(
        self, deals: DealTable, *, train: Flags, score: Flags, as_of: np.datetime64
    ) -> Array:
        if not score.any():
            return np.zeros(0)
        fitted_on = deal_facts(deals, train, as_of)
        scored = deal_facts(deals, score, as_of)
        start_of_day = _midnight(as_of)
        model = fit_deal_model([*fitted_on, *scored], as_of=start_of_day)
        self.last_model = model
        # Deals engaged after as_of are scored as of their engagement, the others as of as_of.
        at_times: dict[datetime, list[int]] = defaultdict(list)
        for k, d in enumerate(scored):
            assert d.created_at is not None
            at_times[max(start_of_day, d.created_at)].append(k)
        odds = np.empty(len(scored))
        for at, ks in at_times.items():
            odds[ks] = score_deals(
                model, [scored[k] for k in ks], as_of=at, periods=(), reasons=False
            ).win
        return odds
