"""Forecast's REST API: run forecasts, read the latest or one by id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import TypeAdapter

from salesops_common.http import ApiError, JsonResponse
from salesops_forecast.domain.forecast import IssuedForecast
from salesops_forecast.domain.probabilities import SHRINKAGE_WEIGHT, NoClosedDeals
from salesops_forecast.domain.win_probability import MIN_CLOSED_DEALS, MIN_EACH_OUTCOME
from salesops_forecast.service_layer import forecasting, pipeline, scoring
from salesops_forecast.service_layer.context import ForecastContext
from salesops_forecast.service_layer.forecasting import ForecastRun

# The same RFC 3339 rendering as the forecasts' own as_of.
_AS_OF = TypeAdapter(datetime)
_ERROR = {"description": 'JSON error: {"error": {"code", "message", "details"}}'}
_RUN_DOC = f"""Forecast bookings (won amount by close date) as of now for the current fiscal
month (named like `2026-11`) and fiscal quarter (`2026-Q4`; a fiscal year is named by the
calendar year in which it ends), for the company, each territory, each team and each rep with
open deals; score every open deal and open lead on the way. Scheduled runs
(`SALESOPS_FORECAST_RUN_INTERVAL_SECONDS`) do the same. `point` is the period's whole
bookings: what is already won in it plus what is expected.

Each forecast blends up to five methods, by the method `salesops forecast backtest`
measures (the same code, `domain/method.py`); `methods` gives their weights (summing to 1) and,
in this answer only, `method_points` each one's own point: point = Σ weight × method point.

**The pipeline** = won so far in the period + open deals + not yet created. **Each open
deal's P(win)** comes from the deal model (method `win_model_pipeline`) when it is trained: a
calibrated logistic regression on the closed deals (see `GET /v1/deals/{{deal_id}}/forecast`
for its inputs). Otherwise (fewer than {MIN_CLOSED_DEALS} closed deals, fewer than
{MIN_EACH_OUTCOME} won or lost, or a model that does not rank held-out deals) from the stage
history (method `stage_weighted_pipeline`): P(win | reached stage s) = (won deals that
reached s + α·p̄) / (closed deals that reached s + α), with p̄ the overall win rate of closed
deals and α = {SHRINKAGE_WEIGHT}. A stage with little history is pulled toward p̄; a stage no
closed deal ever reached, a deal with no stage, and every deal when the CRM sends no stage
history (the Maven sample does not: its closed deals show only Won or Lost) all get p̄
itself. Each open deal counts P(win) × P(close in what is left of the period) × amount:
P(close) is 1 or 0 when its expected close date is in the period or not; for an undated deal
it comes from the Kaplan–Meier survival of the sales cycles of closed deals (open ones
censored at their age; 1 while no cycle is known), and for a month it is multiplied by the
**quarter's rhythm**: the share of deals open at the same point of past months at the same
place in the quarter (first, second, third month) that were won within them, against that
share over all past months (capped at 1). σ² = Σ p(1−p)·amount² (deals win or lose
independently). *Not yet created*: the mean, over the last (up to 6, at least 2) complete
periods of the same kind (for a month, those at the same place in the quarter), of what was
won in each from deals created on or after the same number of days into it as now; the
standard deviation over all of them adds to σ in quadrature.

**`auto_ets`**, **`theta`**, **`seasonal_run_rate`** and **`seasonal_naive`** forecast the
scope's monthly
bookings (complete months, up to 36, from the first month anything was booked; at least 3):
AutoETS with additive errors (ANN, AAN, AAdN; ANA, AAA, AAdA with two full seasons; chosen
per scope by AICc) and the standard Theta method, with a season of 12 months once 24 months
exist, else 3 (a quarter); the seasonal run-rate is the last three months' run-rate × a
month-in-quarter index (each month's share of its quarter over the complete quarters
before, shrunk toward 1 by quarters / (quarters + 1)); seasonal naive repeats the month one
season (AutoETS's) earlier. The month's point is the one-step
forecast; the quarter's is its complete months as booked plus the forecasts of its
remaining months (spreads added). None is below what the period has already won.

**Weights**: as of the first instant of each of the company's last six complete months that
have three months of bookings before them, each method forecasts that month as above (the
deal model refitted on the deals closed before it and scoring the deals open then; today's
amounts, stages and expected close dates, the only ones kept); weight ∝
1 / max(WAPE, 2 %)^power for each method scored on at least two such months with bookings,
and weight 0 (listed, trimmed) for one whose WAPE is more than a cut-off times the best one's; the
pipeline alone (weight 1) until any is scored. Power (2 or 1) and cut-off (1.25, 1.5, 2, 3
or none) are chosen out of sample: the rule whose blend of each of those months, weighted by
the months before it, erred least (1/WAPE² untrimmed until two blends are scored). The same
weights apply to every scope, month and quarter.

- lo/hi 80 % and 95 % = point ∓ z·σ (z = 1.2816, 1.96), σ = Σ weight × method σ (the
  methods' errors taken as fully correlated); lows never below what is already won;
- categories (open deals only): commit = Σ amount with p ≥ 0.7; best_case = commit + Σ
  amount with 0.4 ≤ p < 0.7; pipeline = Σ amount of every open deal counted in the period;
- a deal's territory is its account's territory (`account.territory_assigned`), else its
  owner's primary territory (the first territory of the newest `ruleset.published` that
  lists the owner); a deal with neither is in no territory forecast;
- amounts in a currency other than the reporting one are skipped and counted as
  `skipped_other_currency` until exchange rates exist (a deal with no currency is taken to be
  in the reporting currency).

Every forecast is stored (runs are kept, never overwritten) and published as
`forecast.published` on `salesops.forecast.v1` in the same transaction, with `deal.scored`
and `lead.scored` for each score that is new or moved by at least
`SALESOPS_FORECAST_SCORE_CHANGE_THRESHOLD` (absolute). `scoring` in the answer names the
models, their data and held-out quality, and how many scores were made and published. 409
while no deal has been won or lost."""


def forecast_json(f: IssuedForecast) -> dict[str, Any]:
    body: dict[str, Any] = f.published().model_dump(mode="json")
    del body["schema_version"]
    body.update(
        run_id=str(f.run_id),
        period_kind=f.period.kind,
        starts_on=f.period.starts_on.isoformat(),
        ends_on=f.period.ends_on.isoformat(),
        deals=f.figures.deals,
        skipped_other_currency=f.skipped_other_currency,
    )
    return body


def run_json(run: ForecastRun) -> dict[str, Any]:
    return {
        "run_id": str(run.run_id),
        "as_of": _AS_OF.dump_python(run.as_of, mode="json"),
        "overall_win_rate": round(float(run.probabilities.overall), 6),
        "closed_deals": run.history.closed,
        "stage_probabilities": run.probabilities_json(),
        "skipped_other_currency": run.skipped_other_currency,
        "scoring": scoring.summary(run.scoring, run.published),
        "forecasts": [
            {**forecast_json(f), "method_points": {m: str(v) for m, v in f.method_points.items()}}
            for f in run.forecasts
        ],
    }


def build_router(ctx: ForecastContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        tags=["forecast"],
        dependencies=[Depends(ctx.require_token)],
        responses={401: _ERROR},
    )

    @router.post("/forecasts/run", status_code=201, description=_RUN_DOC, responses={409: _ERROR})
    async def run_forecasts() -> Response:
        """Run and publish forecasts as of now."""
        try:
            async with ctx.uow() as session:
                run = await forecasting.run_forecast(
                    session, as_of=datetime.now(UTC), **ctx.run_options()
                )
        except NoClosedDeals:
            raise ApiError(
                409,
                "no deal has been won or lost yet, so there is no win rate to forecast with",
                code="no_closed_deals",
            ) from None
        ctx.observe_run(run)
        return JsonResponse(run_json(run), status_code=201)

    @router.get("/forecasts")
    async def list_forecasts(
        scope_kind: Annotated[
            Literal["company", "territory", "team", "rep"] | None, Query()
        ] = None,
        scope_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        period: Annotated[str | None, Query(pattern=r"^\d{4}-(\d{2}|Q[1-4])$")] = None,
    ) -> dict[str, Any]:
        """The latest forecast of every (scope, period), optionally filtered."""
        async with ctx.uow() as session:
            found = await forecasting.latest_forecasts(
                session, scope_kind=scope_kind, scope_id=scope_id, period=period
            )
        return {"forecasts": [forecast_json(f) for f in found]}

    @router.get("/pipeline")
    async def get_pipeline() -> dict[str, int]:
        """How many deals the pipeline snapshot holds, by outcome: what the next forecast
        run will learn from (won and lost) and weigh (open)."""
        async with ctx.uow() as session:
            return await pipeline.pipeline_summary(session)

    @router.get("/forecasts/{forecast_id}", responses={404: _ERROR})
    async def get_forecast(forecast_id: UUID) -> dict[str, Any]:
        """One stored forecast, from any run."""
        async with ctx.uow() as session:
            found = await forecasting.find_forecast(session, forecast_id)
        if found is None:
            raise ApiError(404, "no such forecast")
        return forecast_json(found)

    return router
