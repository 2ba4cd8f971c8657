"""Prometheus metrics (one registry per app, names ``salesops_<service>_<what>_<unit>``)
and structured JSON logs with the correlation id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# One sample per counter: the *_created series only doubles what a scrape carries.
disable_created_metrics()  # type: ignore[no-untyped-call]

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Children:
    """A labelled metric's children, each resolved once: ``labels()`` validates and locks on
    every call, which hot paths (every request, every event) need not pay again. Only for
    label values bounded by the code (routes, sources, types, outcomes)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class ServiceMetrics:
    """The plumbing metrics every service exposes; services add their own to ``registry``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        p = f"salesops_{service}_"
        r = self.registry
        self.http_requests = Counter(
            p + "http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            p + "http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_backlog = Gauge(p + "outbox_backlog_events", "Unsent outbox rows", registry=r)
        self.outbox_published = Counter(
            p + "outbox_published", "Events published from the outbox", ["topic"], registry=r
        )
        self.outbox_republished = Counter(
            p + "outbox_republished",
            "Outbox events handed back to the relay after the broker lost its topics",
            registry=r,
        )
        self.outbox_latency = Histogram(
            p + "outbox_publish_latency_seconds",
            "Outbox row committed -> acknowledged by the broker",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_events = Counter(
            p + "consumer_events",
            "Consumed events by outcome",
            ["topic", "outcome"],
            registry=r,
        )
        self.consumer_processing = Histogram(
            p + "consumer_processing_seconds",
            "Time to apply one consumed batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pipeline_lag = Histogram(
            p + "pipeline_lag_seconds",
            "Event published to the broker -> applied by this consumer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_applied = Gauge(
            p + "consumer_last_applied_event_timestamp_seconds",
            "Publish time of the newest event this service applied",
            registry=r,
        )
        self.dlq_events = Counter(
            p + "dlq_events", "Records sent to a dead-letter topic", ["topic"], registry=r
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("correlation_id", correlation_id), ("event_id", event_id)):
            value = var.get()
            if value:
                entry[key] = value
        service = getattr(record, "service", None)
        if service:
            entry["service"] = service
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect at ERROR; keep them, but not its debug chatter.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True
