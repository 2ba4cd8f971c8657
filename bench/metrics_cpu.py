"""CPU time, not wall time, of metrics' two halves over a generated organisation's year: the
consumer's write path (per statement, in the PostgreSQL backend, and Python's share) and a
``/metrics`` snapshot (per family of KPIs). CPU seconds move far less than latencies when the
machine is shared: a process waiting for a core uses none.

The database is filled through metrics' projection code as bench/metrics_scrape.fill fills it
(its exchange rate and quotas too): all but the last ``MEASURED`` share of the history in
large batches, the rest in batches of ``--batch`` events as the consumer writes them, each
statement's backend CPU read from /proc before and after it. Then the exposition's families
(the 30-day window, every label, as the service's snapshot task asks them) are computed
``--repeats`` times on one connection each, with the backend's and this process's CPU around
each. Last, snapshots as the service takes them one after the other (``--held`` events of
the history held back from the fill, written a batch of one mix of types at a time, then a
snapshot computed from the one before, against one computed whole on the same data): what a
snapshot costs when it reads again only the families whose tables changed.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from bench import metrics_scrape
from bench.cpu import process_cpu
from bench.metrics_org import Org, Size
from bench.report import table
from bench.stack import Stack
from salesops_common.envelope import Envelope
from salesops_metrics.adapters import repository
from salesops_metrics.adapters.prometheus import Renderer, groupings, render
from salesops_metrics.domain.dependencies import READS
from salesops_metrics.domain.kpis import KPIS, KpiDefinition
from salesops_metrics.domain.periods import resolve_window
from salesops_metrics.domain.projection import effects_of
from salesops_metrics.service_layer.kpis import Exposition, Kpis
from salesops_metrics.service_layer.reports import KpiSettings

MEASURED = 0.2
BULK = 5_000
BATCH = 300
REPEATS = 5
HELD = 4_000
# Batches of one mix of types written between two snapshots.
MIXES = {
    "deals and new leads (the freshness load)": (
        "deal.created",
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "lead.created",
        "lead.converted",
    ),
    "routing: assignments and SLA breaches": (
        "lead.assigned",
        "lead.reassigned",
        "lead.sla_breached",
    ),
    "activities": ("activity.logged",),
    "quotas and rates only (nothing consumed)": (),
}


@dataclass
class WritePath:
    events: int = 0
    backend: float = 0.0  # s
    python: float = 0.0  # s
    statements: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class Snapshots:
    repeats: int
    families: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (pg, py) s
    render: list[float] = field(default_factory=list)


class Metered:
    """A connection whose statements' backend CPU is added up by their first words."""

    def __init__(self, conn: asyncpg.Connection, pid: int, into: WritePath) -> None:
        self._conn, self._pid, self._into = conn, pid, into

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _metered(self, name: str, query: str, *args: Any) -> Any:
        before = process_cpu(self._pid)
        try:
            return await getattr(self._conn, name)(query, *args)
        finally:
            key = " ".join(query.split())[:60]
            self._into.statements[key] += process_cpu(self._pid) - before
            self._into.calls[key] += 1

    async def execute(self, query: str, *args: Any) -> Any:
        return await self._metered("execute", query, *args)

    async def fetch(self, query: str, *args: Any) -> Any:
        return await self._metered("fetch", query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._metered("fetchval", query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._metered("fetchrow", query, *args)

    async def copy_records_to_table(self, table: str, **kwargs: Any) -> Any:
        before = process_cpu(self._pid)
        try:
            return await self._conn.copy_records_to_table(table, **kwargs)
        finally:
            key = f"COPY {table}"
            self._into.statements[key] += process_cpu(self._pid) - before
            self._into.calls[key] += 1


async def _write(conn: Any, events: Sequence[Envelope]) -> None:
    async with conn.transaction():
        await repository.log_events(conn, events)
        await repository.write_effects(conn, [e for event in events for e in effects_of(event)])
        await repository.add_event_counts(conn, Counter(e.type for e in events))


async def fill(dsn: str, events: Sequence[Envelope], batch: int) -> WritePath:
    measured = WritePath()
    conn = await asyncpg.connect(dsn)
    try:
        cut = int(len(events) * (1 - MEASURED))
        for i in range(0, cut, BULK):
            await _write(conn, events[i : i + BULK])
        await conn.execute("VACUUM ANALYZE")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        metered = Metered(conn, pid, measured)
        backend, python = process_cpu(pid), time.process_time()
        for i in range(cut, len(events), batch):
            await _write(metered, events[i : i + batch])
        measured.backend = process_cpu(pid) - backend
        measured.python = time.process_time() - python
        measured.events = len(events) - cut
        async with conn.transaction():  # what metrics_scrape.fill sets over REST
            await repository.save_rates(conn, {"EUR": Decimal("1.08")})
            await repository.save_quotas(conn, metrics_scrape.quotas())
    finally:
        await conn.close()
    return measured


async def snapshots(dsn: str, repeats: int) -> Snapshots:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None

    @asynccontextmanager
    async def read(lanes: int) -> AsyncIterator[list[asyncpg.Connection]]:
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield [conn]

    now = datetime.now(UTC)
    kpis = Kpis(read, settings=KpiSettings(), clock=lambda: now)
    grouping = groupings(rep_labels=False)
    window = resolve_window("30d", start=None, end=None, now=now, start_month=1)
    families: dict[str, list[tuple[KpiDefinition, str | None]]] = {}
    for kpi in KPIS.values():
        if not kpi.counter:
            families.setdefault(kpi.basis, []).extend((kpi, by) for by in grouping(kpi))
    out = Snapshots(repeats)
    try:
        for repeat in range(repeats + 1):  # the first unmeasured
            for basis, wanted in families.items():
                async with kpis._read() as conns:  # noqa: SLF001 - one family at a time
                    pid = await conns[0].fetchval("SELECT pg_backend_pid()")
                    report = kpis._report(conns, window)  # noqa: SLF001
                    await report.roster()
                    backend, python = process_cpu(pid), time.process_time()
                    await report.compute(wanted)
                    spent = (process_cpu(pid) - backend, time.process_time() - python)
                if repeat:
                    out.families.setdefault(basis, []).append(spent)
            exposition = await kpis.exposition(groupings=grouping, window=window)
            python = time.process_time()
            render(exposition, grouping)
            if repeat:
                out.render.append(time.process_time() - python)
    finally:
        await pool.close()
    return out


@dataclass
class Successive:
    """Per mix: CPU s (PostgreSQL, Python) of each snapshot computed from the one before and
    of one computed whole, and how many families the former read again."""

    kept: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    whole: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    families: dict[str, list[int]] = field(default_factory=dict)
    events: dict[str, list[int]] = field(default_factory=dict)


def one_connection_kpis(conn: asyncpg.Connection, now: datetime) -> Kpis:
    """Metrics' KPIs read on ``conn`` alone (every read a read-only repeatable-read
    transaction on it, whatever lanes the read asks for), at a fixed ``now``."""

    @asynccontextmanager
    async def read(lanes: int) -> AsyncIterator[list[asyncpg.Connection]]:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield [conn]

    return Kpis(read, settings=KpiSettings(), clock=lambda: now)


async def successive(dsn: str, held: Sequence[Envelope], batch: int, repeats: int) -> Successive:
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    kpis = one_connection_kpis(conn, now)
    grouping = groupings(rep_labels=False)
    window = resolve_window("30d", start=None, end=None, now=now, start_month=1)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    renderer = Renderer(grouping)

    async def snapshot(previous: Exposition | None, into: list[tuple[float, float]]) -> Exposition:
        backend, python = process_cpu(pid), time.process_time()
        taken = await kpis.exposition(groupings=grouping, window=window, previous=previous)
        (renderer if previous else Renderer(grouping))(taken)
        into.append((process_cpu(pid) - backend, time.process_time() - python))
        return taken

    out = Successive()
    pool = list(held)
    try:
        latest = await snapshot(None, [])
        for repeat in range(repeats):
            for mix, types in MIXES.items():
                events = [e for e in pool if e.type in types][:batch]
                pool = [e for e in pool if e not in events]
                async with conn.transaction():
                    if events:
                        await _write(conn, events)
                    if not types:  # a quota and a rate set over REST
                        await repository.save_rates(conn, {"EUR": Decimal(f"1.0{repeat}")})
                        await repository.save_quotas(conn, metrics_scrape.quotas()[:1])
                previous = latest
                latest = await snapshot(previous, out.kept.setdefault(mix, []))
                read_again = {b for b, s in latest.stamps.items() if s != previous.stamps.get(b)}
                out.families.setdefault(mix, []).append(len(read_again))
                out.events.setdefault(mix, []).append(len(events))
                await snapshot(None, out.whole.setdefault(mix, []))
    finally:
        await conn.close()
    return out


@dataclass(frozen=True)
class CpuResults:
    size: Size
    write: WritePath
    batch: int
    snapshots: Snapshots
    successive: Successive


async def run(
    size: Size, *, batch: int = BATCH, repeats: int = REPEATS, held: int = HELD
) -> CpuResults:
    stack = Stack.start()
    try:
        for attempt in range(3):  # its migrations; a loaded machine may start it slowly
            try:
                stack.metrics().stop()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        org = Org(size, datetime.now(UTC))
        events = [*org.roster(), *org.history()]
        write = await fill(stack.metrics_dsn, events[:-held], batch)
        measured = await snapshots(stack.metrics_dsn, repeats)
        following = await successive(stack.metrics_dsn, events[-held:], batch, min(repeats, 3))
        return CpuResults(size, write, batch, measured, following)
    finally:
        stack.stop()


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f}"


def report(r: CpuResults) -> str:
    w, s = r.write, r.snapshots
    top = sorted(w.statements.items(), key=lambda kv: -kv[1])[:10]
    writes = table(
        ("statement", "calls", "backend CPU ms", "share"),
        [[f"`{k}…`", f"{w.calls[k]:,}", _ms(v), f"{v / w.backend:.0%}"] for k, v in top],
    )
    per_family = []
    for basis, spent in sorted(s.families.items(), key=lambda kv: -sum(map(sum, kv[1]))):
        pg = sum(p for p, _ in spent) / len(spent)
        py = sum(p for _, p in spent) / len(spent)
        per_family.append([basis, _ms(pg), _ms(py), _ms(pg + py)])
    pg_total = sum(sum(p for p, _ in v) / len(v) for v in s.families.values())
    py_total = sum(sum(p for _, p in v) / len(v) for v in s.families.values())
    render_ms = sum(s.render) / len(s.render)
    per_family.append(["**every family**", _ms(pg_total), _ms(py_total), _ms(pg_total + py_total)])
    per_family.append(["rendering the text", "–", _ms(render_ms), _ms(render_ms)])
    return "\n".join(
        [
            f"{r.size.describe()}. Consumer write path, the last {MEASURED:.0%} of the history "
            f"({w.events:,} events) in batches of {r.batch}: PostgreSQL backend "
            f"{1e6 * w.backend / w.events:.0f} µs CPU an event, this process (projection code, "
            f"encoding) {1e6 * w.python / w.events:.0f} µs.",
            "",
            writes,
            "",
            f"A `/metrics` snapshot (30 days, every label), each family on one connection, "
            f"mean CPU ms of {s.repeats} after one unmeasured (CPU ticks are 10 ms: small "
            "figures are coarse):",
            "",
            table(("family", "PostgreSQL", "Python", "both"), per_family),
            "",
            "Snapshots one after the other, as the service takes them: a batch of one mix of "
            f"the history's last events (at most {r.batch}), then a snapshot computed from the one "
            "before (families whose tables did not change kept, with their text), against one "
            "computed whole on the same data, mean CPU ms (PostgreSQL + Python, rendering "
            "included):",
            "",
            _successive(r.successive),
        ]
    )


def _successive(s: Successive) -> str:
    def both(spent: list[tuple[float, float]]) -> str:
        pg, py = (sum(x) / len(spent) for x in zip(*spent, strict=True))
        return f"{_ms(pg + py)} ({_ms(pg)} + {_ms(py)})"

    exposed = len(set(READS) - {"dead_letters"})  # a counter: read whole every time
    rows = [
        [
            mix,
            f"{sum(s.events[mix]) / len(s.events[mix]):.0f}",
            f"{sum(s.families[mix]) / len(s.families[mix]):.1f} of {exposed}",
            both(s.kept[mix]),
            both(s.whole[mix]),
        ]
        for mix in s.kept
    ]
    return table(("between two snapshots", "events", "families read again", "kept", "whole"), rows)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.metrics_cpu", description=__doc__)
    p.add_argument("--deals", type=int, default=20_000)
    p.add_argument("--leads", type=int, default=None, help="default: twice the deals")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--held", type=int, default=HELD, help="events held back for successive")
    args = p.parse_args(argv)
    size = Size(deals=args.deals, leads=args.leads or 2 * args.deals)
    results = run(size, batch=args.batch, repeats=args.repeats, held=args.held)
    print(report(uvloop.run(results)))
    print(f"\n(pid {os.getpid()}; load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
