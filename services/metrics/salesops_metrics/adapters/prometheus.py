"""KPIs for Prometheus, read from PostgreSQL before each scrape: every copy of the service
shows the same numbers, whichever events it consumed itself."""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from salesops_common.db import UnitOfWork
from salesops_common.events import EVENT_TYPES
from salesops_metrics.adapters import repository
from salesops_metrics.domain.kpis import Snapshot


class KpiCollector(Collector):
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._snapshot: Snapshot | None = None

    async def refresh(self) -> None:
        async with self._uow() as session:
            self._snapshot = await repository.snapshot(session)

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        if snap is None:
            return
        rate = snap.value("win_rate").value
        win_rate = GaugeMetricFamily(
            "salesops_metrics_win_rate_ratio",
            "Deals won / (won + lost); NaN while no deal is closed",
        )
        win_rate.add_metric([], float(rate) if rate is not None else math.nan)
        yield win_rate
        for name, value, doc in (
            ("salesops_metrics_deals_won", snap.won, "Distinct deals won"),
            ("salesops_metrics_deals_lost", snap.lost, "Distinct deals lost"),
            ("salesops_metrics_leads_assigned", snap.leads_assigned, "Distinct leads assigned"),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        events = CounterMetricFamily(
            "salesops_metrics_events", "Events applied, by type", labels=["type"]
        )
        for type_name in EVENT_TYPES:  # bounded: only the known event types
            events.add_metric([type_name], snap.events_by_type.get(type_name, 0))
        yield events
