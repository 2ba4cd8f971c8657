"""What routing's entrypoints share: settings, unit of work, metrics, auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from salesops_common.db import UnitOfWork
from salesops_common.inbox import HandlerContext
from salesops_common.observability import ServiceMetrics
from salesops_routing.config import RoutingSettings
from salesops_routing.domain.rotation import STRATEGIES


@dataclass
class RoutingContext:
    settings: RoutingSettings
    uow: UnitOfWork
    metrics: ServiceMetrics
    require_token: Callable[..., Awaitable[None]]
    assignments: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.assignments = Counter(
            "salesops_routing_assignments",
            "Leads assigned, by strategy (fallback_queue: no eligible rep)",
            ["strategy"],
            registry=self.metrics.registry,
        )
        for strategy in STRATEGIES:
            self.assignments.labels(strategy)  # every series exists from the first scrape

    def count_assignment(self, ctx: HandlerContext, strategy: str) -> None:
        ctx.after_commit(self.assignments.labels(strategy).inc)
