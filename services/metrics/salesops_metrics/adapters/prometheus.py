"""KPIs for Prometheus, read from PostgreSQL before each scrape: every copy of the service
shows the same numbers, whichever events it consumed itself."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from salesops_common.events import EVENT_TYPES
from salesops_metrics.domain.kpis import Snapshot

SnapshotLoader = Callable[[], Awaitable[Snapshot]]


class KpiCollector(Collector):
    """Yields the snapshot taken by :meth:`refresh` (an ``http.create_app`` ``before_scrape``
    hook): ``collect`` is synchronous and cannot read the database itself."""

    def __init__(self, load: SnapshotLoader) -> None:
        self._load = load
        self._snapshot: Snapshot | None = None

    async def refresh(self) -> None:
        self._snapshot = await self._load()

    def describe(self) -> Iterator[Metric]:
        # The registry checks names on register, before any snapshot exists.
        return iter(kpi_families(Snapshot()))

    def collect(self) -> Iterator[Metric]:
        # Before the first successful read there is nothing true to say: yield nothing.
        if self._snapshot is not None:
            yield from kpi_families(self._snapshot)


def kpi_families(snap: Snapshot) -> list[Metric]:
    rate = snap.value("win_rate").value
    win_rate = GaugeMetricFamily(
        "salesops_metrics_win_rate_ratio",
        "Deals won / (won + lost) over deals with an outcome; NaN while no deal has one",
    )
    # NaN rather than an absent series: "no closed deal yet" stays distinguishable from
    # "metrics is down" (absent()), and a threshold alert on NaN never fires.
    win_rate.add_metric([], float(rate) if rate is not None else math.nan)
    # Counters of distinct deals: one only goes down when a CRM reverses an outcome
    # (won -> lost), which Prometheus reads as a counter reset.
    counters = [
        CounterMetricFamily(
            "salesops_metrics_deals_won",
            "Distinct deals whose outcome is won",
            value=snap.deals_won,
        ),
        CounterMetricFamily(
            "salesops_metrics_deals_lost",
            "Distinct deals whose outcome is lost",
            value=snap.deals_lost,
        ),
        CounterMetricFamily(
            "salesops_metrics_leads_assigned",
            "Distinct leads put in a rep's hands",
            value=snap.leads_assigned,
        ),
    ]
    events = CounterMetricFamily(
        "salesops_metrics_events", "Events applied, by type", labels=["type"]
    )
    for type_name in sorted(EVENT_TYPES):  # the label is bounded by the known types
        events.add_metric([type_name], snap.events_by_type.get(type_name, 0))
    return [win_rate, *counters, events]
