"""What forecast's entrypoints share: settings, unit of work, topics, metrics, auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypedDict

from prometheus_client import Counter, Gauge

from salesops_common.db import UnitOfWork
from salesops_common.kafka import Topics
from salesops_common.observability import ServiceMetrics
from salesops_forecast.config import ForecastSettings
from salesops_forecast.domain.forecast import COMPANY
from salesops_forecast.service_layer.forecasting import ForecastRun


class RunOptions(TypedDict):
    """What every forecast run takes from the settings, requested or scheduled."""

    fiscal_year_start_month: int
    currency: str
    topics: Topics
    score_change_threshold: float


@dataclass
class ForecastContext:
    settings: ForecastSettings
    uow: UnitOfWork
    topics: Topics
    metrics: ServiceMetrics
    require_token: Callable[..., Awaitable[None]]
    runs: Counter = field(init=False)
    company_point: Gauge = field(init=False)
    scores_published: Counter = field(init=False)

    def __post_init__(self) -> None:
        registry = self.metrics.registry
        self.runs = Counter(
            "salesops_forecast_runs", "Forecast runs stored and published", registry=registry
        )
        self.company_point = Gauge(
            "salesops_forecast_company_point_amount",
            "Company point forecast of the latest run, in the reporting currency",
            ["period_kind"],
            registry=registry,
        )

        self.scores_published = Counter(
            "salesops_forecast_scores_published",
            "deal.scored and lead.scored events published (scores that moved materially)",
            ["kind"],
            registry=registry,
        )

    def run_options(self) -> RunOptions:
        return RunOptions(
            fiscal_year_start_month=self.settings.fiscal_year_start_month,
            currency=self.settings.currency,
            topics=self.topics,
            score_change_threshold=self.settings.score_change_threshold,
        )

    def observe_run(self, run: ForecastRun) -> None:
        self.runs.inc()
        if run.published is not None:
            self.scores_published.labels("deal").inc(run.published.deals)
            self.scores_published.labels("lead").inc(run.published.leads)
        for forecast in run.forecasts:
            if forecast.scope == COMPANY:
                point = float(forecast.figures.point)
                self.company_point.labels(forecast.period.kind).set(point)
