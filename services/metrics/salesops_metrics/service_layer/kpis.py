"""Reading the KPIs: every answer comes from PostgreSQL, each from one snapshot of the data (a
read-only, repeatable-read transaction), so that every copy of the service gives the same
numbers and an answer made of several statements agrees with itself."""

from __future__ import annotations

import itertools
import time
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
from salesops_metrics.service_layer.shared import SharedReads

NO_VALUE = KpiValue(None, None, None, 0)
# ``read(n)``: n connections in read-only transactions on one snapshot of the data.
Reader = Callable[[int], AbstractAsyncContextManager[list[asyncpg.Connection]]]
# Connections a listing or an exposition runs its families on, side by side.
LANES = 3
# KPI reads for requests running at once (each shared by the identical requests that arrived
# before it started: service_layer/shared.py); a listing runs on LANES connections.
READS = 2
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
    ``at`` is the clock's time then, ``version`` what the data was (queries.version),
    ``ended`` the pacing clock's time (monotonic seconds) when the family's read ended and
    ``took`` how long it took (seconds)."""

    serial: int
    at: datetime
    version: Hashable = None
    ended: float = 0.0
    took: float = 0.0


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
    # False: a family that changed was kept, not read again (paced: not due yet); the
    # families are then not all as of ``version``
    complete: bool = True
    # seconds the longest of the families read took (0: none read)
    longest_read: float = 0.0
    read: frozenset[str] = frozenset()  # the families read for it (the others were kept)


class Kpis:
    """The KPIs of one service instance's database."""

    def __init__(
        self,
        read: Reader,
        *,
        settings: KpiSettings,
        clock: Clock,
        pace_clock: Callable[[], float] = time.monotonic,
        reads: int = READS,
    ) -> None:
        self._reader = read
        self.shared = SharedReads(reads)
        self._settings = settings
        self._clock = clock
        self._pace_clock = pace_clock
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

    async def shared_report(
        self,
        kpi: KpiDefinition,
        *,
        window: Callable[[], Window],
        window_key: Hashable,
        group_by: str | None,
    ) -> tuple[Window, list[GroupRow]]:
        """``report`` for a request, shared with the identical requests (same KPI, grouping
        and ``window_key``, what names the window) that arrived before its computation
        started; ``window()`` resolves the window when it starts (a rolling one ends then)."""

        async def compute() -> tuple[Window, list[GroupRow]]:
            resolved = window()
            return resolved, await self.report(kpi, window=resolved, group_by=group_by)

        key = ("report", kpi.name, window_key, group_by)
        return await self.shared.run(key, compute, kind="report")

    async def listing(self) -> Listing:
        """Every KPI over all time, ungrouped; a KPI whose rows carry their own keys (a stage,
        a period) has no single value and shows null. Shared as ``shared_report`` is."""
        return await self.shared.run(("listing",), self._listing, kind="listing")

    async def _listing(self) -> Listing:
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
        paced: bool = False,
    ) -> Exposition:
        """Every KPI but the counters by every grouping over ``window``. With ``previous`` (the
        exposition before, over the same window and groupings), the families none of whose
        tables changed since (domain/dependencies.py) and read less than ``keep_for`` ago
        keep its rows: they would read the same rows again, so the exposition is still
        what one snapshot of the data shows, but for rolling windows read up to ``keep_for``
        earlier.

        ``paced``: a family whose tables changed is read again only once it rested as long
        as its last read took (each family at its own pace: a cheap one is not held back by
        the dearest); until then it keeps its rows, at most ``keep_for``, and the exposition
        is not ``complete``."""
        began, started = self._pace_clock(), time.perf_counter()
        async with self._read(LANES) as conns:
            conn = conns[0]
            version = await queries.version(conn)
            report = self._report(conns, window)
            kept, deferred = _keepable(
                previous, version, report.now - keep_for, paced_at=began if paced else None
            )
            wanted = [
                (kpi, by)
                for kpi in KPIS.values()
                if not kpi.counter and kpi.basis not in kept
                for by in groupings(kpi)
            ]
            rows = await report.compute(wanted) if wanted else {}
            totals = await queries.totals(conn)
        histograms = report.distributions
        serial = next(_SERIALS)
        stamps: dict[str, Stamp] = {
            basis: Stamp(
                serial,
                report.now,
                version,
                began + report.ended.get(basis, started) - started,
                report.took.get(basis, 0.0),
            )
            for basis in {kpi.basis for kpi, _ in wanted}
        }
        if previous is not None and kept:
            rows |= {key: r for key, r in previous.rows.items() if KPIS[key[0]].basis in kept}
            histograms |= {
                key: d for key, d in previous.histograms.items() if DISTRIBUTIONS[key[0]] in kept
            }
            stamps |= {basis: previous.stamps[basis] for basis in kept}
        return Exposition(
            rows,
            totals,
            dict(version.events),
            histograms,
            version,
            stamps,
            complete=not deferred,
            longest_read=max(report.took.values(), default=0.0),
            read=frozenset(report.took),
        )


def _keepable(
    previous: Exposition | None,
    version: DataVersion,
    since: datetime,
    *,
    paced_at: float | None = None,
) -> tuple[set[str], set[str]]:
    """The families of ``previous`` that need not be read again, and of those the ones whose
    tables changed since they were read but that are not due (with ``paced_at``, the pacing
    clock's time now: a family is due once it rested, from the end of its last read, as long
    as that read took)."""
    if previous is None:
        return set(), set()
    kept: set[str] = set()
    deferred: set[str] = set()
    stale_since: dict[DataVersion, frozenset[str]] = {}
    for basis, stamp in previous.stamps.items():
        if stamp.at < since or not isinstance(stamp.version, DataVersion):
            continue
        if stamp.version not in stale_since:
            stale_since[stamp.version] = stale_families(stamp.version, version)
        if basis not in stale_since[stamp.version]:
            kept.add(basis)
        elif paced_at is not None and paced_at < stamp.ended + stamp.took:
            deferred.add(basis)
    return kept | deferred, deferred
