"""Deals to replay, as arrays: read from the Maven CRM sample's CSV files (the only I/O).

The sample has no stage history: a deal is open from its engage date until its close date,
and its amount while open is its product's list price (open deals have no close value).
Deals never engaged (Prospecting) have no dates at all and never enter a replayed pipeline.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from salesops_forecast.domain.pipeline_model import Array, Days, days

Labels = npt.NDArray[np.str_]
Flags = npt.NDArray[np.bool_]
# The pipeline spells one product differently from products.csv.
PRODUCT_NAMES = {"GTXPro": "GTX Pro"}


@dataclass(frozen=True)
class DealTable:
    agent: Labels
    office: Labels
    product: Labels
    sector: Labels
    engaged: Days
    closed: Days
    won: Flags
    value: Array  # close value (0 for lost and open deals)
    list_price: Array
    manager: Labels | None = None  # the agent's manager, where known

    def __len__(self) -> int:
        return len(self.agent)

    def closed_before(self, day: np.datetime64) -> Flags:
        flags: Flags = self.closed < day
        return flags

    def open_at(self, day: np.datetime64) -> Flags:
        """Engaged before ``day`` and not closed before it (NaT compares False)."""
        flags: Flags = (self.engaged < day) & ~(self.closed < day)
        return flags


def _rows(data_dir: Path, name: str) -> list[dict[str, str]]:
    with open(data_dir / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_maven(data_dir: Path) -> DealTable:
    prices = {r["product"]: float(r["sales_price"]) for r in _rows(data_dir, "products.csv")}
    teams = _rows(data_dir, "sales_teams.csv")
    offices = {r["sales_agent"]: r["regional_office"] for r in teams}
    managers = {r["sales_agent"]: r["manager"] for r in teams}
    sectors = {r["account"]: r["sector"] for r in _rows(data_dir, "accounts.csv")}
    deals = _rows(data_dir, "sales_pipeline.csv")
    products = [PRODUCT_NAMES.get(r["product"], r["product"]) for r in deals]
    return DealTable(
        agent=np.array([r["sales_agent"] for r in deals]),
        office=np.array([offices[r["sales_agent"]] for r in deals]),
        product=np.array(products),
        sector=np.array([sectors.get(r["account"], "unknown") for r in deals]),
        engaged=days([_day(r["engage_date"]) for r in deals]),
        closed=days([_day(r["close_date"]) for r in deals]),
        won=np.array([r["deal_stage"] == "Won" for r in deals]),
        value=np.array([float(r["close_value"] or 0) for r in deals]),
        list_price=np.array([prices[p] for p in products]),
        manager=np.array([managers[r["sales_agent"]] for r in deals]),
    )


def _day(value: str) -> date | None:
    return date.fromisoformat(value) if value else None
