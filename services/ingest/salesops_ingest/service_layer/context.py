"""What ingest's entrypoints and workers share: settings, stores, topics, metrics, auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from salesops_common.db import UnitOfWork
from salesops_common.kafka import Topics
from salesops_common.observability import Children, ServiceMetrics
from salesops_ingest.adapters.deliveries import Delivery, DeliveryStore
from salesops_ingest.config import IngestSettings
from salesops_ingest.domain.records import CrmApi
from salesops_ingest.service_layer.group_commit import GroupCommit
from salesops_ingest.service_layer.pipeline import BatchResult
from salesops_ingest.service_layer.processor import Processor


@dataclass
class IngestContext:
    settings: IngestSettings
    uow: UnitOfWork
    topics: Topics
    metrics: ServiceMetrics
    require_token: Callable[..., Awaitable[None]]
    deliveries: DeliveryStore
    processor: Processor
    apis: Mapping[str, CrmApi] = field(default_factory=dict)
    events: GroupCommit = field(init=False)
    accepted: Counter = field(init=False)
    outcomes: Counter = field(init=False)
    webhook_items: Counter = field(init=False)
    dead_letters: Counter = field(init=False)
    writebacks: Counter = field(init=False)
    echoes: Counter = field(init=False)
    quality: Gauge = field(init=False)
    pending: Gauge = field(init=False)
    # Labelled children resolved once (the label sets are small: sources, types, outcomes).
    _published: Children = field(init=False)
    _outcome: Children = field(init=False)

    def __post_init__(self) -> None:
        # POST /v1/events: concurrent requests committed together, on the store's pool.
        self.events = GroupCommit(
            self.deliveries.acquire, self.processor, on_result=self.observe_published
        )
        r = self.metrics.registry
        self.accepted = Counter(
            "salesops_ingest_events_published",
            "Canonical events staged for publication, by source and type",
            ["source", "type"],
            registry=r,
        )
        self.outcomes = Counter(
            "salesops_ingest_changes",
            "Record changes processed, by source and outcome (accepted, duplicate, "
            "unchanged, merged, queued, stale)",
            ["source", "outcome"],
            registry=r,
        )
        self._published, self._outcome = Children(self.accepted), Children(self.outcomes)
        self.webhook_items = Counter(
            "salesops_ingest_webhook_items_received",
            "Items in webhook deliveries stored, by source",
            ["source"],
            registry=r,
        )
        self.dead_letters = Counter(
            "salesops_ingest_dead_letters",
            "Items dead-lettered (could not be mapped or processed), by source",
            ["source"],
            registry=r,
        )
        self.writebacks = Counter(
            "salesops_ingest_writebacks",
            "Owner write-backs to the CRM, by source and result (done, failed, retried, skipped)",
            ["source", "result"],
            registry=r,
        )
        self.echoes = Counter(
            "salesops_ingest_writeback_echoes",
            "Owner changes reported by a CRM that were ingest's own write-back",
            ["source"],
            registry=r,
        )
        self.quality = Gauge(
            "salesops_ingest_data_quality_ratio",
            "Data quality rates by source: duplicate_rate (new leads merged as duplicates), "
            "invalid_email_rate, missing_field_rate (created records missing required fields)",
            ["source", "rate"],
            registry=r,
        )
        self.pending = Gauge(
            "salesops_ingest_deliveries_pending",
            "Stored deliveries not processed yet",
            registry=r,
        )

    def raw(self) -> Any:
        """``async with ctx.raw() as conn``: an asyncpg connection from ingest's pool."""
        return self.deliveries.acquire()

    def observe(self, result: BatchResult, _: Sequence[Delivery] = ()) -> None:
        self.observe_published(result)
        for (source, metric), count in result.quality.items():
            if metric == "deliveries_duplicate":
                self._outcome(source, "duplicate").inc(count)

    def observe_published(self, result: BatchResult) -> None:
        """Count the events a committed batch staged for publication, by source and type."""
        for envelope in result.envelopes:
            path = envelope.source
            source = path.split("/")[2] if path.count("/") >= 2 else "api"
            self._published(source, envelope.type).inc()

    def observe_outcomes(self, source: str, statuses: Sequence[str]) -> None:
        for status in statuses:
            self._outcome(source, status).inc()

    def count_dead(self, source: str, count: int) -> None:
        self.dead_letters.labels(source).inc(count)
