"""What ingest's entrypoints share: settings, unit of work, topics, metrics, auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter

from salesops_common.db import UnitOfWork
from salesops_common.kafka import Topics
from salesops_common.observability import ServiceMetrics
from salesops_ingest.config import IngestSettings
from salesops_ingest.domain.model import ValidEvent
from salesops_ingest.service_layer.accept import EventResult


@dataclass
class IngestContext:
    settings: IngestSettings
    uow: UnitOfWork
    topics: Topics
    metrics: ServiceMetrics
    require_token: Callable[..., Awaitable[None]]
    accepted: Counter = field(init=False)
    duplicates: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.accepted = Counter(
            "salesops_ingest_events_accepted",
            "Events accepted durably",
            ["source", "type"],
            registry=self.metrics.registry,
        )
        self.duplicates = Counter(
            "salesops_ingest_events_duplicate",
            "Deliveries recognized as duplicates",
            ["source"],
            registry=self.metrics.registry,
        )

    def observe_accepted(
        self, events: Sequence[ValidEvent], results: Sequence[EventResult]
    ) -> None:
        for valid, result in zip(events, results, strict=True):
            if result.status == "accepted":
                self.accepted.labels(valid.event.source, valid.event.type).inc()
            else:
                self.duplicates.labels(valid.event.source).inc()
