"""A forecast run: learn stage probabilities and the scoring models, score open deals and
leads, forecast every scope and period, store the forecasts and scores and stage their
``forecast.published``, ``deal.scored`` and ``lead.scored`` events in the same
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.envelope import Envelope
from salesops_common.kafka import Topics
from salesops_common.outbox import add_to_outbox
from salesops_forecast.adapters import repository
from salesops_forecast.domain.forecast import IssuedForecast, OpenDeal, forecast_pipeline
from salesops_forecast.domain.periods import current_periods
from salesops_forecast.domain.probabilities import (
    StageProbabilities,
    WinHistory,
    stage_probabilities,
)
from salesops_forecast.domain.score_changes import DEFAULT_THRESHOLD
from salesops_forecast.service_layer import scoring
from salesops_forecast.service_layer.blending import Blended, blend_run
from salesops_forecast.service_layer.scoring import Published, Scoring

SOURCE = "/forecast"


@dataclass(frozen=True)
class ForecastRun:
    run_id: UUID
    as_of: datetime
    history: WinHistory
    probabilities: StageProbabilities
    forecasts: list[IssuedForecast]
    skipped_other_currency: int
    scoring: Scoring
    published: Published | None = None

    def probabilities_json(self) -> dict[str, float]:
        return {s: round(float(p), 6) for s, p in self.probabilities.by_stage.items()}


def _issue(
    blended: Sequence[Blended], *, run_id: UUID, as_of: datetime, currency: str
) -> list[IssuedForecast]:
    return [
        IssuedForecast(
            forecast_id=uuid.uuid4(),
            run_id=run_id,
            as_of=as_of,
            currency=currency,
            scope=b.forecast.scope,
            period=b.forecast.period,
            figures=b.forecast.figures,
            skipped_other_currency=b.forecast.skipped_other_currency,
            methods=b.methods,
            method_points=b.method_points,
        )
        for b in blended
    ]


def _skipped(deals: Sequence[OpenDeal], currency: str) -> int:
    return sum(1 for d in deals if not d.in_currency(currency))


async def run_forecast(
    session: AsyncSession,
    *,
    as_of: datetime,
    fiscal_year_start_month: int,
    currency: str,
    topics: Topics,
    score_change_threshold: float = DEFAULT_THRESHOLD,
) -> ForecastRun:
    """Raises NoClosedDeals when nothing has closed yet: there is no win rate to apply."""
    await repository.snapshot_isolation(session)
    history = await repository.win_history(session)
    deals = await repository.open_deals(session)
    probabilities = stage_probabilities(history, (d.stage for d in deals if d.stage))
    periods = current_periods(as_of.date(), start_month=fiscal_year_start_month)
    scored = await scoring.score(session, as_of=as_of, periods=periods)
    deals = scored.with_territories(deals)
    planned = forecast_pipeline(
        deals=deals,
        probabilities=probabilities,
        periods=periods,
        currency=currency,
        deal_probabilities=scored.forecast_probabilities(),
    )
    blended = await blend_run(
        planned=planned,
        facts=scored.facts,
        win=dict(zip(scored.deals.deal_ids, scored.deals.win.tolist(), strict=True)),
        as_of=as_of,
        currency=currency,
        start_month=fiscal_year_start_month,
        pipeline_method=scored.pipeline_method(),
    )
    run_id = uuid.uuid4()
    run = ForecastRun(
        run_id=run_id,
        as_of=as_of,
        history=history,
        probabilities=probabilities,
        forecasts=_issue(blended, run_id=run_id, as_of=as_of, currency=currency),
        skipped_other_currency=_skipped(deals, currency),
        scoring=scored,
    )
    await _store(session, run, currency=currency, topics=topics)
    published = await scoring.publish(
        session, scored, run_id=run_id, as_of=as_of, topics=topics, threshold=score_change_threshold
    )
    return replace(run, published=published)


async def _store(session: AsyncSession, run: ForecastRun, *, currency: str, topics: Topics) -> None:
    await repository.add_run(
        session,
        run_id=run.run_id,
        as_of=run.as_of,
        currency=currency,
        history=run.history,
        stage_probabilities=run.probabilities_json(),
        skipped_other_currency=run.skipped_other_currency,
        models=run.scoring.models(),
    )
    await repository.add_forecasts(session, run.forecasts)
    envelopes = [
        Envelope.of(
            "forecast.published", f.published(), source=SOURCE, id=f.forecast_id, time=run.as_of
        )
        for f in run.forecasts
    ]
    await add_to_outbox(session, envelopes, topics=topics)


def tick_start(now: datetime, interval_seconds: float) -> datetime:
    """Scheduled runs happen on wall-clock multiples of the interval (every process agrees
    on which tick it is): the start of the tick ``now`` falls in."""
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % interval_seconds, tz=UTC)


async def run_if_due(
    session: AsyncSession,
    *,
    now: datetime,
    interval_seconds: float,
    fiscal_year_start_month: int,
    currency: str,
    topics: Topics,
    score_change_threshold: float,
) -> ForecastRun | None:
    """The scheduled run of this tick, unless another process is running it or a run
    (scheduled or requested) already happened in it. The lock is tried as the
    transaction's first statement, so its snapshot sees any run committed before the
    lock was free."""
    await repository.snapshot_isolation(session)
    if not await repository.try_schedule_lock(session):
        return None
    if await repository.ran_since(session, tick_start(now, interval_seconds)):
        return None
    return await run_forecast(
        session,
        as_of=now,
        fiscal_year_start_month=fiscal_year_start_month,
        currency=currency,
        topics=topics,
        score_change_threshold=score_change_threshold,
    )


async def latest_forecasts(
    session: AsyncSession, *, scope_kind: str | None, scope_id: str | None, period: str | None
) -> list[IssuedForecast]:
    return await repository.latest_forecasts(
        session, scope_kind=scope_kind, scope_id=scope_id, period=period
    )


async def find_forecast(session: AsyncSession, forecast_id: UUID) -> IssuedForecast | None:
    return await repository.get_forecast(session, forecast_id)
