"""KPIs for Prometheus, read from PostgreSQL before each scrape: every copy of the service
shows the same numbers, whichever events it consumed itself.

One family per KPI, ``salesops_metrics_<kpi>_<unit>``. Its series: one without labels (the
whole company), then one per group for each grouping the KPI supports among the bounded
labels ``territory``, ``team``, ``source``, ``segment`` and ``tool`` (``rep`` only when the
setting allows it), with only that grouping's label set: ``{team!=""}`` selects the series by
team, ``{team="", territory="", ...}`` the overall one. KPIs with keys of their own add them
(``stage``; ``from_stage`` and ``to_stage``; ``period_kind`` and ``scope`` for forecasts and
quotas, which show the newest closed period, or the current one for coverage). An unknown
group value is ``none``. No data is NaN (never 0); a percentile among unresponded leads is
+Inf.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from salesops_common.events import EVENT_TYPES
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition
from salesops_metrics.service_layer.kpis import Exposition

ExpositionLoader = Callable[[], Awaitable[Exposition]]
LABELS = ("territory", "team", "source", "segment", "tool")
PERIODIC = ("forecast_accuracy", "forecast_wape", "forecast_bias", "pipeline_coverage")
TOTALS = {
    "deals_won": "Deals whose outcome is won (all time)",
    "deals_lost": "Deals whose outcome is lost (all time)",
    "leads_assigned": "Distinct leads put in a rep's hands (all time)",
    "dead_letters": "Distinct events on the dead-letter topics (all time)",
}


def groupings(*, rep_labels: bool) -> Callable[[KpiDefinition], Sequence[str | None]]:
    allowed = (*LABELS, "rep") if rep_labels else LABELS

    def of(kpi: KpiDefinition) -> Sequence[str | None]:
        return [None, *(g for g in kpi.group_by if g in allowed)]

    return of


def metric_name(kpi: KpiDefinition) -> str:
    return f"salesops_metrics_{kpi.name}_{kpi.unit}"


class KpiCollector(Collector):
    """Yields the exposition taken by :meth:`refresh` (an ``http.create_app``
    ``before_scrape`` hook): ``collect`` is synchronous and cannot read the database."""

    def __init__(
        self, load: ExpositionLoader, grouping: Callable[[KpiDefinition], Sequence[str | None]]
    ) -> None:
        self._load = load
        self._grouping = grouping
        self._exposition: Exposition | None = None

    async def refresh(self) -> None:
        self._exposition = await self._load()

    def describe(self) -> Iterator[Metric]:
        # The registry checks names on register, before any exposition exists.
        return iter(families(Exposition({}, {}, {}), self._grouping))

    def collect(self) -> Iterator[Metric]:
        # Before the first successful read there is nothing true to say: yield nothing.
        if self._exposition is not None:
            yield from families(self._exposition, self._grouping)


def families(
    exposition: Exposition, grouping: Callable[[KpiDefinition], Sequence[str | None]]
) -> list[Metric]:
    out: list[Metric] = []
    for kpi in KPIS.values():
        if kpi.counter:
            continue
        family = Metric(metric_name(kpi), _summary(kpi), "gauge")
        for by in grouping(kpi):
            rows = exposition.rows.get((kpi.name, by))
            if rows is None:
                continue
            if kpi.name in PERIODIC:
                rows = _newest_periods(rows)
            for labels, value in _samples(rows):
                family.add_sample(metric_name(kpi), labels, value)
        out.append(family)
    for name, doc in TOTALS.items():
        total = exposition.totals.get(name, 0)
        out.append(CounterMetricFamily(f"salesops_metrics_{name}", doc, value=total))
    events = CounterMetricFamily(
        "salesops_metrics_events", "Events applied, by type", labels=["type"]
    )
    for type_name in sorted(EVENT_TYPES):  # the label is bounded by the known types
        events.add_metric([type_name], exposition.events_by_type.get(type_name, 0))
    out.append(events)
    return out


def _summary(kpi: KpiDefinition) -> str:
    first = kpi.definition.split(". ")[0]
    return first if first.endswith(".") else first + "."


def _samples(rows: Sequence[GroupRow]) -> Iterator[tuple[dict[str, str], float]]:
    for row in rows:
        labels = {k: v if v is not None else "none" for k, v in row.group.items()}
        if (period := labels.pop("period", None)) is not None:
            labels["period_kind"] = _period_kind(period)
        value = row.value.value
        yield labels, math.nan if value is None else float(value)


def _period_kind(name: str) -> str:
    return "quarter" if "-Q" in name else "month"


def _newest_periods(rows: Sequence[GroupRow]) -> list[GroupRow]:
    """For each period kind and scope, the row of the newest period only (names of one kind
    sort as their periods do). The exposition window leaves out periods not begun yet."""
    newest: dict[tuple[str, tuple[tuple[str, str | None], ...]], GroupRow] = {}
    for row in rows:
        name = row.group.get("period") or ""
        rest = tuple((k, v) for k, v in row.group.items() if k != "period")
        known = newest.get((_period_kind(name), rest))
        if known is None or name > (known.group.get("period") or ""):
            newest[(_period_kind(name), rest)] = row
    return list(newest.values())
