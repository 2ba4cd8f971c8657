"""What routing's entrypoints share: settings, unit of work, metrics, auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from salesops_common.db import UnitOfWork
from salesops_common.observability import ServiceMetrics
from salesops_routing.config import RoutingSettings
from salesops_routing.domain.rotation import STRATEGIES

_AFTER_COMMIT = "salesops_routing.after_commit"


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

    def count_assignment(self, session: AsyncSession, strategy: str) -> None:
        after_commit(session, self.assignments.labels(strategy).inc)


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction has committed.

    The consumer re-applies a failed batch record by record and retries transient failures,
    so anything counted inside a transaction that then rolls back would be counted twice.
    """
    pending: list[Callable[[], None]] | None = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []
        event.listen(session.sync_session, "after_commit", _run_after_commit)
    pending.append(action)


def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT, []):
        action()
