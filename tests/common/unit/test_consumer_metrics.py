"""What a consumer shows Prometheus before it has consumed anything."""

from __future__ import annotations

from typing import Any

import pytest

from salesops_common.inbox import ConsumerRunner
from salesops_common.kafka import Topics
from salesops_common.observability import ServiceMetrics

pytestmark = pytest.mark.unit


def test_each_subscribed_topic_has_a_dead_letter_series_at_zero() -> None:
    """A counter series that first appears at 1 has no increase() in Prometheus: the alert on
    dead-letter growth would miss a topic's first poison record."""
    metrics = ServiceMetrics("probe")
    uow: Any = None  # never used before run()
    ConsumerRunner(
        name="probe.all",
        topics=Topics(prefix="t1."),
        subscribe=["salesops.crm.v1", "salesops.routing.v1"],
        bootstrap="127.0.0.1:1",
        group_id="probe",
        uow=uow,
        handlers={},
        metrics=metrics,
        source="/probe",
    )
    for topic in ("salesops.crm.v1", "salesops.routing.v1"):
        sample = metrics.registry.get_sample_value(
            "salesops_probe_dlq_events_total", {"topic": topic}
        )
        assert sample == 0, topic
