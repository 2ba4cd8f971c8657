"""What routing's entrypoints share: settings, unit of work, metrics, auth, the topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import Counter

from salesops_common.db import UnitOfWork
from salesops_common.inbox import HandlerContext
from salesops_common.kafka import Topics
from salesops_common.observability import ServiceMetrics
from salesops_routing.config import RoutingSettings

ASSIGNMENT_STRATEGIES = (
    "account_owner",
    "round_robin",
    "weighted_round_robin",
    "least_loaded",
    "fallback_queue",
)


@dataclass
class RoutingContext:
    settings: RoutingSettings
    uow: UnitOfWork
    metrics: ServiceMetrics
    require_token: Callable[..., Awaitable[None]]
    topics: Topics = field(default_factory=Topics)
    source: str = "/routing"
    assignments: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.assignments = Counter(
            "salesops_routing_assignments",
            "Lead assignments and reassignments, by strategy (fallback_queue: no eligible rep)",
            ["strategy"],
            registry=self.metrics.registry,
        )
        for strategy in ASSIGNMENT_STRATEGIES:
            self.assignments.labels(strategy)  # every series exists from the first scrape

    def count_assignment(self, ctx: HandlerContext, strategy: str) -> None:
        ctx.after_commit(self.assignments.labels(strategy).inc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[HandlerContext]:
        """A transaction outside the consumer (workers, REST) that may emit events: they go
        to the outbox in the same commit, exactly as a handler's do."""
        async with self.uow() as session:
            ctx = HandlerContext(session=session, topics=self.topics, source=self.source)
            yield ctx
            await ctx.flush()
        ctx.committed()
