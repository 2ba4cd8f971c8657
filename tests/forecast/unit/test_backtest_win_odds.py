"""The backtest's win odds are the forecast service's deal model, fed the Maven deals as the
service sees them as of each day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from salesops_cli.maven import DATA_DIR
from salesops_forecast.backtest.deals import read_maven
from salesops_forecast.backtest.win_odds import ServiceWinOdds, deal_facts
from salesops_forecast.domain.win_probability import (
    WIN_MODEL,
    fit_and_score,
    fit_deal_model,
    score_deals,
)

pytestmark = pytest.mark.unit

CUTOFF = np.datetime64("2017-06-01", "D")
# "As of 2017-06-01" in the table's whole days: the end of May 31.
AS_OF = datetime(2017, 6, 1, tzinfo=UTC) - timedelta(microseconds=1)


def test_deals_are_seen_as_they_were_on_the_day() -> None:
    deals = read_maven(DATA_DIR)
    engaged = ~np.isnat(deals.engaged)
    facts = deal_facts(deals, engaged, CUTOFF)
    rows = np.flatnonzero(engaged)
    closed_before = deals.closed[rows] < CUTOFF
    assert [f.closed for f in facts] == closed_before.tolist()
    for f, i in zip(facts, rows, strict=True):
        assert f.product == deals.product[i]
        assert f.industry == deals.sector[i]
        assert f.team == deals.office[i]
        if f.closed:
            # As the service gets them from the Maven import: the close value, 0 when lost.
            assert f.outcome == ("won" if deals.won[i] else "lost")
            assert f.amount == deals.value[i]
            assert f.closed_before(AS_OF)
        else:
            # Open then (or engaged later), closed later or still open: in Engaging, at its
            # list price.
            assert f.outcome == "open"
            assert f.stage == "Engaging"
            assert f.closed_at is None
            assert f.amount == deals.list_price[i]
            assert f.open_at(AS_OF) == (deals.engaged[i] < CUTOFF)
    assert any(f.outcome == "lost" and f.amount == 0 for f in facts)
    # A deal closing on the cutoff day itself is still open as of that day.
    on_the_day = deals.closed[rows] == CUTOFF
    assert on_the_day.any()
    assert all(not f.closed for f, d in zip(facts, on_the_day, strict=True) if d)
    assert len({f.owner_id for f in facts}) == len(set(deals.agent[rows]))
    assert deals.manager is not None
    assert len({f.manager_id for f in facts}) == len(set(deals.manager[rows]))


def test_open_deals_get_the_service_models_scores() -> None:
    deals = read_maven(DATA_DIR)
    train = deals.closed_before(CUTOFF) & ~np.isnat(deals.engaged)
    open_now = deals.open_at(CUTOFF)
    odds = ServiceWinOdds()

    p = odds(deals, train=train, score=open_now, as_of=CUTOFF)

    facts = deal_facts(deals, train | open_now, CUTOFF)
    model, scores = fit_and_score(facts, as_of=AS_OF, periods=())
    assert odds.last_model is not None
    assert odds.last_model.name == WIN_MODEL == model.name
    assert len(p) == open_now.sum() == len(scores.win)
    assert np.allclose(p, scores.win)
    assert p.std() > 0.01  # the win model ranks them, not one base rate for all
    assert WIN_MODEL in odds.describe()


def test_holdout_deals_engaged_later_are_scored_as_of_their_engagement() -> None:
    deals = read_maven(DATA_DIR)
    engaged = ~np.isnat(deals.engaged)
    train = deals.closed_before(CUTOFF) & engaged
    test = (deals.closed >= CUTOFF) & engaged
    p = ServiceWinOdds()(deals, train=train, score=test, as_of=CUTOFF)

    scored = deal_facts(deals, test, CUTOFF)
    model = fit_deal_model([*deal_facts(deals, train, CUTOFF), *scored], as_of=AS_OF)
    later = [k for k, f in enumerate(scored) if f.created_at and f.created_at > AS_OF]
    assert 0 < len(later) < len(scored)
    for k in later[:20]:
        at = scored[k].created_at
        assert at is not None
        alone = score_deals(model, [scored[k]], as_of=at, periods=())
        assert p[k] == pytest.approx(alone.win[0])
