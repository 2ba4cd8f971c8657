"""Reading the KPIs: every answer comes from PostgreSQL, in one transaction, so every copy of
the service gives the same numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from salesops_common.db import UnitOfWork, driver_connection
from salesops_metrics.adapters import queries
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition, KpiValue
from salesops_metrics.domain.periods import ALL_TIME, Window
from salesops_metrics.service_layer.reports import Facts, KpiSettings, compute

NO_VALUE = KpiValue(None, None, None, 0)


@dataclass(frozen=True)
class Listing:
    kpis: list[tuple[KpiDefinition, KpiValue]]
    events_by_type: dict[str, int]


async def report(
    uow: UnitOfWork,
    kpi: KpiDefinition,
    *,
    window: Window,
    group_by: str | None,
    now: datetime,
    settings: KpiSettings,
) -> list[GroupRow]:
    async with uow() as session:
        conn = await driver_connection(session)
        facts = Facts(conn, window=window, now=now, settings=settings)
        return await compute(kpi, facts, group_by)


async def listing(uow: UnitOfWork, *, now: datetime, settings: KpiSettings) -> Listing:
    """Every KPI over all time, ungrouped; a KPI whose rows carry their own keys (a stage, a
    period) has no single value and shows null."""
    async with uow() as session:
        conn = await driver_connection(session)
        facts = Facts(conn, window=ALL_TIME, now=now, settings=settings)
        values = []
        for kpi in KPIS.values():
            rows = await compute(kpi, facts, None)
            single = rows[0].value if len(rows) == 1 and not rows[0].group else NO_VALUE
            values.append((kpi, single))
        return Listing(values, await queries.events_by_type(conn))


@dataclass(frozen=True)
class Exposition:
    """What a scrape shows: grouped values over the exposition window, and all-time totals."""

    rows: dict[tuple[str, str | None], list[GroupRow]]
    totals: dict[str, int]
    events_by_type: dict[str, int]


async def exposition(
    uow: UnitOfWork,
    *,
    groupings: Callable[[KpiDefinition], Sequence[str | None]],
    window: Window,
    now: datetime,
    settings: KpiSettings,
) -> Exposition:
    async with uow() as session:
        conn = await driver_connection(session)
        facts = Facts(conn, window=window, now=now, settings=settings)
        rows = {}
        for kpi in KPIS.values():
            if kpi.counter:
                continue
            for by in groupings(kpi):
                rows[(kpi.name, by)] = await compute(kpi, facts, by)
        totals = await queries.totals(conn)
        return Exposition(rows, totals, await queries.events_by_type(conn))
