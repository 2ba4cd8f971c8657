"""Reading the KPIs: every answer comes from PostgreSQL, each from one snapshot of the data (a
read-only, repeatable-read transaction), so that every copy of the service gives the same
numbers and an answer made of several statements agrees with itself."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from salesops_metrics.adapters import queries
from salesops_metrics.domain.dependencies import DataVersion, stale_families
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiDefinition, KpiValue
from salesops_metrics.domain.periods import ALL_TIME, Window
from salesops_metrics.service_layer.reports import (
    DISTRIBUTIONS,
    Distribution,
    KpiSettings,
    Report,
    Territories,
)

NO_VALUE = KpiValue(None, None, None, 0)
# ``read(n)``: n connections in read-only transactions on one snapshot of the data.
Reader = Callable[[int], AbstractAsyncContextManager[list[asyncpg.Connection]]]
# Connections a listing or an exposition runs its families on, side by side.
LANES = 3
# How long an exposition keeps a family's rows while nothing it reads changes: rolling
# windows move with the clock.
KEEP_FOR = timedelta(seconds=10)
Clock = Callable[[], datetime]
Groupings = Callable[[KpiDefinition], Sequence[str | None]]


@dataclass(frozen=True)
class Listing:
    kpis: list[tuple[KpiDefinition, KpiValue]]
    events_by_type: dict[str, int]


@dataclass(frozen=True)
class Stamp:
    """When a family's rows were read: ``serial`` tells reads apart (unique in the process),
    ``at`` is the clock's time then."""

    serial: int
    at: datetime


_SERIALS = itertools.count(1)


@dataclass(frozen=True)
class Exposition:
    """What a scrape shows: grouped values over the exposition window, all-time totals, and
    the distributions behind the histograms (finite observations, per group). ``stamps``:
    when each family's rows were read (a family kept from the snapshot before keeps its
    stamp)."""

    rows: dict[tuple[str, str | None], list[GroupRow]]
    totals: dict[str, int]
    events_by_type: dict[str, int]
    histograms: dict[tuple[str, str | None], Distribution] = field(default_factory=dict)
    # What the data was when it was read (queries.version): equal versions, equal numbers.
    version: Hashable = None
    stamps: dict[str, Stamp] = field(default_factory=dict)


class Kpis:
    """The KPIs of one service instance's database."""

    def __init__(self, read: Reader, *, settings: KpiSettings, clock: Clock) -> None:
        self._reader = read
        self._settings = settings
        self._clock = clock
        self._territories = Territories()

    @asynccontextmanager
    async def _read(self, lanes: int = 1) -> AsyncIterator[list[asyncpg.Connection]]:
        async with self._reader(lanes) as conns:
            for conn in conns:
                await queries.for_reports(conn)
            yield conns

    def _report(self, conns: list[asyncpg.Connection], window: Window) -> Report:
        return Report(
            conns[0],
            window=window,
            now=self._clock(),
            settings=self._settings,
            territories=self._territories,
            lanes=conns[1:],
        )

    async def report(
        self, kpi: KpiDefinition, *, window: Window, group_by: str | None
    ) -> list[GroupRow]:
        async with self._read() as conns:
            rows = await self._report(conns, window).compute([(kpi, group_by)])
        return rows[(kpi.name, group_by)]

    async def listing(self) -> Listing:
        """Every KPI over all time, ungrouped; a KPI whose rows carry their own keys (a stage,
        a period) has no single value and shows null."""
        async with self._read(LANES) as conns:
            rows = await self._report(conns, ALL_TIME).compute([(k, None) for k in KPIS.values()])
            events = await queries.events_by_type(conns[0])
        values = []
        for kpi in KPIS.values():
            found = rows[(kpi.name, None)]
            single = found[0].value if len(found) == 1 and not found[0].group else NO_VALUE
            values.append((kpi, single))
        return Listing(values, events)

    async def version(self) -> Hashable:
        async with self._read() as conns:
            return await queries.version(conns[0])

    async def exposition(
        self,
        *,
        groupings: Groupings,
        window: Window,
        previous: Exposition | None = None,
        keep_for: timedelta = KEEP_FOR,
    ) -> Exposition:
        """Every KPI but the counters by every grouping over ``window``. With ``previous`` (the
        exposition before, over the same window and groupings), the families none of whose
        tables changed since (domain/dependencies.py) and read less than ``keep_for`` ago
        keep its rows: they would read the same rows again, so the exposition is still
        what one snapshot of the data shows, but for rolling windows read up to ``keep_for``
        earlier."""
        async with self._read(LANES) as conns:
            conn = conns[0]
            version = await queries.version(conn)
            report = self._report(conns, window)
            kept = _keepable(previous, version, report.now - keep_for)
            wanted = [
                (kpi, by)
                for kpi in KPIS.values()
                if not kpi.counter and kpi.basis not in kept
                for by in groupings(kpi)
            ]
            rows = await report.compute(wanted) if wanted else {}
            totals = await queries.totals(conn)
        histograms = report.distributions
        stamp = Stamp(next(_SERIALS), report.now)
        stamps: dict[str, Stamp] = {kpi.basis: stamp for kpi, _ in wanted}
        if previous is not None and kept:
            rows |= {key: r for key, r in previous.rows.items() if KPIS[key[0]].basis in kept}
            histograms |= {
                key: d for key, d in previous.histograms.items() if DISTRIBUTIONS[key[0]] in kept
            }
            stamps |= {basis: previous.stamps[basis] for basis in kept}
        return Exposition(rows, totals, dict(version.events), histograms, version, stamps)


def _keepable(previous: Exposition | None, version: DataVersion, since: datetime) -> set[str]:
    """The families of ``previous`` that need not be read again."""
    if previous is None or not isinstance(previous.version, DataVersion):
        return set()
    stale = stale_families(previous.version, version)
    recent = {basis for basis, stamp in previous.stamps.items() if stamp.at >= since}
    return recent - stale
