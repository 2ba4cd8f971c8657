"""The KPIs metrics keeps, with their definitions exactly as computed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    unit: str
    definition: str


WIN_RATE = KpiDefinition(
    "win_rate",
    "ratio",
    "Deals won / (deals won + deals lost), over every deal whose latest outcome event "
    "(deal.won or deal.lost, the newest by event time) is known; each deal counts once. "
    "Null when no deal is closed.",
)
DEALS_WON = KpiDefinition(
    "deals_won", "deals", "Distinct deals whose latest outcome event is deal.won."
)
DEALS_LOST = KpiDefinition(
    "deals_lost", "deals", "Distinct deals whose latest outcome event is deal.lost."
)
LEADS_ASSIGNED = KpiDefinition(
    "leads_assigned",
    "leads",
    "Distinct leads whose latest lead.assigned or lead.reassigned names a rep "
    "(leads waiting in the fallback queue are not counted).",
)
KPIS = {k.name: k for k in (WIN_RATE, DEALS_WON, DEALS_LOST, LEADS_ASSIGNED)}


@dataclass(frozen=True)
class KpiValue:
    value: Decimal | int | None
    numerator: int
    denominator: int | None
    n: int

    def as_json(self) -> dict[str, Any]:
        value = str(self.value) if isinstance(self.value, Decimal) else self.value
        return {
            "value": value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "n": self.n,
        }


def win_rate(*, won: int, lost: int) -> KpiValue:
    """Won / (won + lost); None — not 0 — when nothing is closed."""
    closed = won + lost
    value = (Decimal(won) / Decimal(closed)).quantize(Decimal("0.0001")) if closed else None
    return KpiValue(value, won, closed, closed)


def count(value: int) -> KpiValue:
    return KpiValue(value, value, None, value)


@dataclass(frozen=True)
class Snapshot:
    """Every KPI's inputs, read in one transaction."""

    won: int
    lost: int
    leads_assigned: int
    events_by_type: dict[str, int]

    def value(self, kpi: str) -> KpiValue:
        if kpi == WIN_RATE.name:
            return win_rate(won=self.won, lost=self.lost)
        if kpi == DEALS_WON.name:
            return count(self.won)
        if kpi == DEALS_LOST.name:
            return count(self.lost)
        if kpi == LEADS_ASSIGNED.name:
            return count(self.leads_assigned)
        raise KeyError(kpi)


def newer_outcome_wins(stored_time: Any, incoming_time: Any) -> bool:
    """An outcome replaces the stored one only if it is not older (late events lose)."""
    return stored_time is None or incoming_time >= stored_time
