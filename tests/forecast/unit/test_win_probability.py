"""Deal win probability on generated deals whose product decides the odds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from salesops_forecast.domain.learners import auc
from salesops_forecast.domain.periods import current_periods
from salesops_forecast.domain.win_probability import (
    MIN_CLOSED_DEALS,
    STAGE_HISTORY,
    WIN_MODEL,
    fit_and_score,
    fit_deal_model,
    score_deals,
)
from tests.forecast.deal_generator import AS_OF, WIN_RATE, generated_deals

pytestmark = pytest.mark.unit
PERIODS = current_periods(AS_OF.date(), start_month=1)


def test_the_model_ranks_deals_by_the_feature_that_decides_them_and_is_calibrated() -> None:
    deals = generated_deals(3000, 0)
    # Fit on the deals closed before a cutoff, check on those closed after it.
    cutoff = AS_OF - timedelta(days=120)
    model = fit_deal_model(deals, as_of=cutoff)
    assert model.name == WIN_MODEL
    later = [d for d in deals if d.closed_at is not None and d.closed_at > cutoff]
    later_open = [d for d in later if d.open_at(cutoff)]
    scores = score_deals(model, later_open, as_of=cutoff, periods=PERIODS)
    won = np.asarray([d.outcome == "won" for d in later_open], dtype=float)
    assert (auc(won, scores.win) or 0) > 0.75  # the best possible here is about 0.8
    by_product: dict[str, list[float]] = defaultdict(list)
    for d, p in zip(later_open, scores.win, strict=True):
        by_product[d.product or ""].append(float(p))
    for product, ps in by_product.items():
        assert abs(np.mean(ps) - WIN_RATE[product]) < 0.07, product
    # Calibrated: in each band of predicted probability, the share won is close to it.
    for lo, hi in ((0.0, 0.35), (0.35, 0.65), (0.65, 1.0)):
        band = (scores.win >= lo) & (scores.win < hi)
        if band.sum() >= 50:
            assert abs(won[band].mean() - scores.win[band].mean()) < 0.08
    assert model.describe()["held_out_auc"] > 0.7


def test_reasons_name_the_product_that_moves_the_odds() -> None:
    deals = generated_deals(2000, 300)
    model, scores = fit_and_score(deals, as_of=AS_OF, periods=PERIODS)
    open_deals = [d for d in deals if d.open_at(AS_OF)]
    assert len(scores.deal_ids) == len(open_deals) == 300
    for d, reasons, p in zip(open_deals, scores.reasons, scores.win, strict=True):
        if d.product in ("Basic", "Enterprise"):
            assert reasons[0].startswith(f"product {d.product}: "), reasons
        assert 0 < p < 1
    basic = [p for d, p in zip(open_deals, scores.win, strict=True) if d.product == "Basic"]
    enterprise = [
        p for d, p in zip(open_deals, scores.win, strict=True) if d.product == "Enterprise"
    ]
    assert max(basic) < min(enterprise)


def test_close_in_period_is_win_probability_times_the_chance_of_closing_in_time() -> None:
    deals = generated_deals(2000, 200)
    model, scores = fit_and_score(deals, as_of=AS_OF, periods=PERIODS)
    month, quarter = scores.close_in["month"], scores.close_in["quarter"]
    assert np.all(month <= quarter + 1e-12)
    assert np.all(quarter <= scores.win + 1e-12)
    # Won deals took 10 to 100 days: a deal 5 days old cannot be won within the 15 days
    # left of November, except through the smoothing toward a new deal's chance.
    ages = np.asarray(
        [(AS_OF - d.created_at).days for d in deals if d.open_at(AS_OF) and d.created_at]
    )
    young = ages < 3
    old = (ages > 40) & (ages < 55)
    assert (month[young] / scores.win[young]).mean() < (month[old] / scores.win[old]).mean()


def test_with_few_closed_deals_the_stage_history_is_used_and_said() -> None:
    deals = generated_deals(MIN_CLOSED_DEALS - 1, 5)
    model, scores = fit_and_score(deals, as_of=AS_OF, periods=PERIODS)
    assert model.name == STAGE_HISTORY
    overall = model.won_deals / model.closed_deals
    # The open deals' stage (Proposal) has no closed history: the overall rate.
    assert np.allclose(scores.win, overall)
    assert all("stage-history fallback" in r[-1] for r in scores.reasons)
    assert f"{MIN_CLOSED_DEALS - 1} closed deals" in scores.reasons[0][-1]


def test_a_lost_deal_recorded_at_zero_does_not_teach_the_model_that_amount_decides() -> None:
    """CRMs (and the Maven sample) record a lost deal's close value, 0, as its amount."""
    deals = [
        replace(d, amount=0.0 if d.outcome == "lost" else 1000.0, product="Pro")
        for d in generated_deals(1000, 200)
    ]
    model, scores = fit_and_score(deals, as_of=AS_OF, periods=PERIODS)
    assert model.describe()["held_out_auc"] < 0.7  # with the zeros taken as sizes: 1.0
    won_share = model.won_deals / model.closed_deals
    assert abs(float(np.mean(scores.win)) - won_share) < 0.1
