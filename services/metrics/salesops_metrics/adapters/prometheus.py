"""KPIs for Prometheus, from a snapshot of PostgreSQL kept current (service_layer/snapshots.py):
every copy of the service shows the same numbers, whichever events it consumed itself.

One family per KPI, ``salesops_metrics_<kpi>_<unit>``. Its series: one without labels (the
whole company), then one per group for each grouping the KPI supports among the bounded
labels ``territory``, ``team``, ``source``, ``segment`` and ``tool`` (``rep`` only when the
setting allows it), with only that grouping's label set: ``{team!=""}`` selects the series by
team, ``{team="", territory="", ...}`` the overall one. KPIs with keys of their own add them
(``stage``; ``from_stage`` and ``to_stage``; ``period_kind`` for forecasts and quotas, which
show the newest closed period, or the current one for coverage; ``scope``, the scope kind, for
WAPE and bias). An unknown group value is ``none``. No data is NaN (never 0), and the series
known beforehand are there without rows (:func:`_missing`); a percentile among unresponded
leads is +Inf.

Histograms (``gaugehistogram``: the distribution over the exposition window, which shrinks as
observations leave it, not a running total) of the sales cycle in days and of lead response
time (calendar and business) and speed to lead in minutes, with the series of their gauges'
groupings: ``histogram_quantile(0.9, salesops_metrics_sales_cycle_days_bucket{team!=""})``.
A lead never responded to (never assigned, for speed to lead) is no observation of them; the
percentile gauges count it as infinitely long.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import cast

from prometheus_client.utils import floatToGoString

from salesops_common.events import EVENT_TYPES
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition
from salesops_metrics.domain.plan_kpis import SCOPE_OF_GROUP
from salesops_metrics.service_layer.kpis import Exposition
from salesops_metrics.service_layer.reports import DISTRIBUTIONS

Grouping = Callable[[KpiDefinition], Sequence[str | None]]
LABELS = ("territory", "team", "source", "segment", "tool")
PERIODIC = ("forecast_accuracy", "forecast_wape", "forecast_bias", "pipeline_coverage")
ACROSS_SCOPES = ("forecast_wape", "forecast_bias")  # a row per scope kind, not per scope
PERIOD_KINDS = ("month", "quarter")
# name -> (the KPI whose groupings its series follow, unit, upper bounds, help)
HISTOGRAMS = {
    "sales_cycle": (
        "sales_cycle_median",
        "days",
        (1, 7, 14, 30, 60, 90, 180, 365),
        "Sales cycle of deals won in the exposition window, days (created to won)",
    ),
    "lead_response": (
        "lead_response_median",
        "minutes",
        (5, 15, 30, 60, 120, 240, 480, 1440, 2880, 10080),
        "Response time of leads created in the exposition window and responded to, calendar "
        "minutes (created to first outbound touch by an assigned rep)",
    ),
    "lead_response_business": (
        "lead_response_business_median",
        "minutes",
        (5, 15, 30, 60, 120, 240, 480, 1440, 2880, 10080),
        "Response time of leads created in the exposition window and responded to, business "
        "minutes of the responding rep",
    ),
    "speed_to_lead": (
        "speed_to_lead_median",
        "minutes",
        (1, 5, 15, 30, 60, 240, 1440),
        "Speed to lead of leads created in the exposition window and assigned to a rep, "
        "minutes (created to first assignment to a rep)",
    ),
}
TOTALS = {
    "deals_won": "Deals whose outcome is won (all time)",
    "deals_lost": "Deals whose outcome is lost (all time)",
    "leads_assigned": "Distinct leads put in a rep's hands (all time)",
    "dead_letters": "Distinct events on the dead-letter topics (all time)",
}


def groupings(*, rep_labels: bool) -> Grouping:
    allowed = (*LABELS, "rep") if rep_labels else LABELS

    def of(kpi: KpiDefinition) -> Sequence[str | None]:
        return [None, *(g for g in kpi.group_by if g in allowed)]

    return of


def metric_name(kpi: KpiDefinition) -> str:
    return f"salesops_metrics_{kpi.name}_{kpi.unit}"


def render(exposition: Exposition, grouping: Grouping) -> bytes:
    """The KPI families in Prometheus' text format (as prometheus_client writes it), rendered
    once per snapshot rather than once per scrape: thousands of series."""
    return Renderer(grouping)(exposition)


class Renderer:
    """:func:`render`, keeping the text of each KPI and histogram whose family's rows a
    snapshot kept from the one before (the same stamp): only what was read again is
    rendered again."""

    def __init__(self, grouping: Grouping) -> None:
        self._grouping = grouping
        self._texts: dict[str, tuple[int, str]] = {}

    def __call__(self, exposition: Exposition) -> bytes:
        out: list[str] = []
        for kpi in KPIS.values():
            if not kpi.counter:
                out.append(self._text(kpi.name, kpi.basis, exposition, _gauge_family))
        for name in HISTOGRAMS:
            out.append(self._text(name, DISTRIBUTIONS[name], exposition, _histogram_family))
        for name, doc in TOTALS.items():
            total = exposition.totals.get(name, 0)
            out.append(_head(f"salesops_metrics_{name}_total", doc, "counter"))
            out.append(f"salesops_metrics_{name}_total {_number(total)}\n")
        out.append(_head("salesops_metrics_events_total", "Events applied, by type", "counter"))
        for type_name in sorted(EVENT_TYPES):  # the label is bounded by the known types
            count = exposition.events_by_type.get(type_name, 0)
            out.append(f'salesops_metrics_events_total{{type="{type_name}"}} {_number(count)}\n')
        return "".join(out).encode()

    def _text(
        self,
        name: str,
        basis: str,
        exposition: Exposition,
        write: Callable[[str, Exposition, Grouping], str],
    ) -> str:
        stamp = exposition.stamps.get(basis)
        known = self._texts.get(name)
        if stamp is not None and known is not None and known[0] == stamp.serial:
            return known[1]
        text = write(name, exposition, self._grouping)
        if stamp is not None:
            self._texts[name] = (stamp.serial, text)
        return text


def _gauge_family(kpi_name: str, exposition: Exposition, grouping: Grouping) -> str:
    kpi = KPIS[kpi_name]
    name = metric_name(kpi)
    out = [_head(name, _summary(kpi), "gauge")]
    for by in grouping(kpi):
        rows = exposition.rows.get((kpi.name, by), [])
        if kpi.name in PERIODIC:
            rows = _newest_periods(rows)
        samples = list(_samples(rows))
        samples += [(labels, math.nan) for labels in _missing(kpi, by, samples)]
        for labels, value in samples:
            out.append(f"{name}{_labels(labels)} {_number(value)}\n")
    return "".join(out)


def _histogram_family(name: str, exposition: Exposition, grouping: Grouping) -> str:
    kpi_name, unit, bounds, doc = HISTOGRAMS[name]
    family = f"salesops_metrics_{name}_{unit}"
    series = [
        ({k: v if v is not None else "none" for k, v in group.items()}, sorted(values))
        for by in grouping(KPIS[kpi_name])
        for group, values in exposition.histograms.get((name, by), [])
    ]
    out = [_head(family, doc, "histogram")]
    # "le" sorts before every group label, so a bucket's labels are le's, then the group's
    bucket = [f'{family}_bucket{{le="{_number(b)}"' for b in (*bounds, math.inf)]
    for labels, ordered in series:
        rest = _labels(labels)[1:-1]
        rest = "," + rest + "}" if rest else "}"
        counts = [*(bisect_right(ordered, b) for b in bounds), len(ordered)]
        out += [f"{head}{rest} {count}.0\n" for head, count in zip(bucket, counts, strict=True)]
    for suffix, total in (("gcount", len), ("gsum", math.fsum)):
        out.append(_head(f"{family}_{suffix}", doc, "gauge"))
        for labels, ordered in series:
            out.append(f"{family}_{suffix}{_labels(labels)} {_number(total(ordered))}\n")
    return "".join(out)


def _head(name: str, doc: str, kind: str) -> str:
    escaped = doc.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"


def _labels(labels: dict[str, str]) -> str:
    """Names sorted, as prometheus_client writes them."""
    return _label_text(tuple(sorted(labels.items()))) if labels else ""


@lru_cache(maxsize=1 << 16)
def _label_text(pairs: tuple[tuple[str, str], ...]) -> str:
    """The same few thousand label sets come back for every KPI and every snapshot."""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """As prometheus_client writes values (Go's float formatting)."""
    return cast(str, floatToGoString(value))  # type: ignore[no-untyped-call]


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


def _missing(
    kpi: KpiDefinition, by: str | None, samples: Sequence[tuple[dict[str, str], float]]
) -> list[dict[str, str]]:
    """The series a grouping always shows, NaN when no row gave them: a family with no rows
    would be absent, which reads as "metrics is down". Only label sets known beforehand, so
    bounded: the company's (by every period kind, for KPIs by period), and WAPE's and bias's
    by scope kind; a KPI's other keys (a stage, a team) only ever come from rows."""
    across_scopes = kpi.name in ACROSS_SCOPES
    if by is not None and not across_scopes:
        return []
    base = {"scope": SCOPE_OF_GROUP[by]} if across_scopes else {}
    wanted = [base | {"period_kind": k} for k in PERIOD_KINDS] if kpi.name in PERIODIC else [base]
    return [w for w in wanted if not any(w.items() <= labels.items() for labels, _ in samples)]


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
