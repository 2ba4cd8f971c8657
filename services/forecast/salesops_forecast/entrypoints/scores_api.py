"""Forecast's REST API for scores: a deal's win probability, a lead's score."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import TypeAdapter
from sqlalchemy import RowMapping

from salesops_common.http import ApiError
from salesops_forecast.adapters import scores
from salesops_forecast.domain.lead_scoring import MIN_KNOWN_LEADS
from salesops_forecast.domain.periods import current_periods
from salesops_forecast.domain.score_changes import DEFAULT_THRESHOLD
from salesops_forecast.domain.win_probability import (
    MIN_CLOSED_DEALS,
    MIN_EACH_OUTCOME,
    SNAPSHOTS,
)
from salesops_forecast.service_layer.context import ForecastContext

_TIME = TypeAdapter(datetime)
_ERROR = {"description": 'JSON error: {"error": {"code", "message", "details"}}'}
_DEAL_DOC = f"""The newest score of a deal (canonical id), from the last forecast run that saw it
open; a deal that has closed since keeps its last score.

**P(win)** (`model: logistic_regression_platt`): a logistic regression learned from the
deals won or lost before the run, each seen at {len(SNAPSHOTS)} moments of its life
({", ".join(f"{s:.0%}" for s in SNAPSHOTS)} of the way from creation to close) as it was
then: stage, days since created and in stage (log), amount (log), product, the account's
industry, country, employees and revenue (log), the owner's and the owner's manager's win
rates from the deals closed before then (smoothed toward the overall rate with 10 deals'
weight), team, territory, and days since the last activity. Platt-calibrated on a quarter of
the closed deals held out (by id); `model_details` shows the held-out AUC and Brier score.
With fewer than {MIN_CLOSED_DEALS} closed deals, or fewer than {MIN_EACH_OUTCOME} won or lost,
or a model that does not rank the held-out deals, the stage-history probability is used
(`model: stage_history`) and the reasons say why.

**P(close in month / quarter)** = P(win) × P(won within what is left of the fiscal period
| its age), the latter from how long won deals took: (won deals that took between its age
and its age plus the days left + 5·q) / (won deals that took longer than its age + 5), q
being the share of won deals that took no longer than the days left.

**Reasons**: the features that moved this deal's odds most against the average deal of
the training data, as odds factors ("product GTX Pro: 2.1× the average odds").

`last_published`: the values last sent as `deal.scored` (sent when P(win) or P(close in
quarter) moves by the threshold, {DEFAULT_THRESHOLD} by default). 404 for a deal never
scored."""
_LEAD_DOC = f"""The newest score of an open lead (canonical id): its probability of becoming a
won deal, learned from leads with a known outcome (converted into a deal that was won,
against disqualified or converted into deals all lost), from lead source, industry, country,
employees and revenue (log), activities (how many, days since the last) and merged
duplicates; calibrated and explained like deals. Fewer than {MIN_KNOWN_LEADS} known outcomes:
the base rate (won + 1) / (known + 2) (`model: base_rate`). 404 for a lead never scored."""


def _time(value: datetime | None) -> Any:
    return _TIME.dump_python(value, mode="json") if value is not None else None


def deal_score_json(row: RowMapping, *, fiscal_year_start_month: int) -> dict[str, Any]:
    month, quarter = current_periods(row["scored_at"].date(), start_month=fiscal_year_start_month)
    published = None
    if row["published_at"] is not None:
        published = {
            "win_probability": row["published_win"],
            "close_in_period_probability": row["published_close"],
            "published_at": _time(row["published_at"]),
        }
    return {
        "deal_id": str(row["deal_id"]),
        "win_probability": row["win_probability"],
        "close_in": {
            "month": {"period": month.name, "probability": row["close_in_month"]},
            "quarter": {"period": quarter.name, "probability": row["close_in_quarter"]},
        },
        "model": row["model"],
        "model_version": row["model_version"],
        "run_id": str(row["run_id"]),
        "scored_at": _time(row["scored_at"]),
        "reasons": row["reasons"],
        "model_details": row["model_details"],
        "last_published": published,
    }


def lead_score_json(row: RowMapping) -> dict[str, Any]:
    return {
        "lead_id": str(row["lead_id"]),
        "probability": row["probability"],
        "model": row["model"],
        "model_version": row["model_version"],
        "run_id": str(row["run_id"]),
        "scored_at": _time(row["scored_at"]),
        "reasons": row["reasons"],
        "model_details": row["model_details"],
        "last_published": (
            {
                "probability": row["published_probability"],
                "published_at": _time(row["published_at"]),
            }
            if row["published_at"] is not None
            else None
        ),
    }


def build_scores_router(ctx: ForecastContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        tags=["scores"],
        dependencies=[Depends(ctx.require_token)],
        responses={401: _ERROR, 404: _ERROR},
    )

    @router.get("/deals/{deal_id}/forecast", description=_DEAL_DOC)
    async def deal_forecast(deal_id: UUID) -> dict[str, Any]:
        """A deal's P(win), P(close in month and quarter), model and reasons."""
        async with ctx.uow() as session:
            row = await scores.deal_score(session, deal_id)
        if row is None:
            raise ApiError(404, "no score for this deal: unknown, or not open in any run")
        start = ctx.settings.fiscal_year_start_month
        return deal_score_json(row, fiscal_year_start_month=start)

    @router.get("/leads/{lead_id}/score", description=_LEAD_DOC)
    async def lead_score(lead_id: UUID) -> dict[str, Any]:
        """A lead's probability of becoming a won deal, model and reasons."""
        async with ctx.uow() as session:
            row = await scores.lead_score(session, lead_id)
        if row is None:
            raise ApiError(404, "no score for this lead: unknown, or not open in any run")
        return lead_score_json(row)

    return router
