"""The KPIs metrics keeps, with their definitions exactly as computed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    unit: str
    definition: str


WIN_RATE = KpiDefinition(
    "win_rate",
    "ratio",
    "Deals won / (deals won + deals lost), over the distinct deals that have an outcome; "
    "a deal's outcome is its newest deal.won or deal.lost by event time, so each deal "
    "counts once and a deal reopened and lost counts as lost. "
    "Null while no deal has an outcome (no data is not a rate of 0).",
)
DEALS_WON = KpiDefinition(
    "deals_won",
    "deals",
    "Distinct deals whose newest outcome (deal.won or deal.lost, by event time) is deal.won.",
)
DEALS_LOST = KpiDefinition(
    "deals_lost",
    "deals",
    "Distinct deals whose newest outcome (deal.won or deal.lost, by event time) is deal.lost.",
)
LEADS_ASSIGNED = KpiDefinition(
    "leads_assigned",
    "leads",
    "Distinct leads that a lead.assigned or lead.reassigned event has put in a rep's hands; "
    "each lead counts once however often it is reassigned, and a lead only ever in the "
    "fallback queue (no rep) is not counted.",
)
KPIS: dict[str, KpiDefinition] = {
    k.name: k for k in (WIN_RATE, DEALS_WON, DEALS_LOST, LEADS_ASSIGNED)
}


@dataclass(frozen=True)
class KpiValue:
    """A KPI's value with what it was computed from; ``n`` is how many observations."""

    value: float | int | None
    numerator: int
    denominator: int | None
    n: int

    def as_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "n": self.n,
        }


def win_rate(*, won: int, lost: int) -> KpiValue:
    """Won / (won + lost); None, never 0, when no deal has an outcome."""
    closed = won + lost
    return KpiValue(won / closed if closed else None, won, closed, closed)


def tally(count: int) -> KpiValue:
    return KpiValue(count, count, None, count)


@dataclass(frozen=True)
class Snapshot:
    """Every KPI's inputs, as of one database snapshot."""

    deals_won: int = 0
    deals_lost: int = 0
    leads_assigned: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)

    def value(self, kpi: str) -> KpiValue:
        if kpi == WIN_RATE.name:
            return win_rate(won=self.deals_won, lost=self.deals_lost)
        counts = {
            DEALS_WON.name: self.deals_won,
            DEALS_LOST.name: self.deals_lost,
            LEADS_ASSIGNED.name: self.leads_assigned,
        }
        return tally(counts[kpi])
