"""What one KPI read costs as the history in its window grows: ``GET /v1/kpis?kpi=...`` through
``salesops serve metrics`` (default settings, its /metrics snapshot task idle) on PostgreSQL,
and a whole ``/metrics`` snapshot
computed in this process, at each of ``--steps`` sizes of history (leads; half as many deals),
all of it inside the last ``--days`` (the default window of a KPI, ``all``, and the gauges'
``30d`` both hold all of it, as in the soak).

The database is filled through metrics' projection code (bench/metrics_scrape.fill) one step
at a time, then vacuumed and analyzed; after each step every request is timed ``--repeats``
times one after the other, then ``--concurrent`` identical ``leads_assigned`` requests at
once (what the soak's open loop piles up): their wall time, and how many computations the
service ran for them (its ``salesops_metrics_kpi_computations_total``).
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bench import metrics_scrape
from bench.metrics_cpu import one_connection_kpis
from bench.metrics_org import Org, Size
from bench.report import table
from bench.stack import Stack
from salesops_common.envelope import Envelope
from salesops_metrics.adapters.prometheus import groupings
from salesops_metrics.domain.periods import resolve_window
from salesops_metrics.service_layer.kpis import Exposition

API = metrics_scrape.API
STEPS = (5_000, 15_000, 40_000)
DAYS = 25
REPEATS = 3
CONCURRENT = 16
QUERIES: tuple[tuple[str, str], ...] = (
    ("leads_assigned", "/v1/kpis?kpi=leads_assigned"),
    ("leads_assigned by territory", "/v1/kpis?kpi=leads_assigned&group_by=territory"),
    ("win_rate", "/v1/kpis?kpi=win_rate"),
    ("lead_response_median", "/v1/kpis?kpi=lead_response_median"),
    ("sales_cycle_p90 30d by team", "/v1/kpis?kpi=sales_cycle_p90&window=30d&group_by=team"),
)
COMPUTATIONS = re.compile(r'^salesops_metrics_kpi_computations_total\{kind="report"\} (\S+)$', re.M)


def history(org: Org, leads: int, seed: int) -> Iterator[Envelope]:
    """``leads`` leads and half as many deals created at random over the last ``days``."""
    rng = random.Random(seed)
    deals = leads // 2
    for _ in range(leads + deals):
        created = org.now - timedelta(seconds=rng.uniform(3_600, org.size.days * 86_400))
        if rng.random() < deals / (leads + deals):
            yield from org.deal(rng, created)
        else:
            yield from org.lead(rng, created)


@dataclass
class Step:
    leads: int
    events: int
    fill_seconds: float
    ms: dict[str, list[float]] = field(default_factory=dict)
    snapshot_ms: list[float] = field(default_factory=list)
    histograms_mib: float = 0.0  # what a snapshot keeps of its observations, for histograms
    concurrent_ms: float = 0.0
    computations: float | None = None  # for the concurrent requests; None: not counted


async def vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def computations(http: httpx.AsyncClient) -> float | None:
    found = COMPUTATIONS.search((await http.get("/metrics")).text)
    return float(found.group(1)) if found else None


def held_mib(exposition: Exposition) -> float:
    """MiB of the lists of floats a snapshot keeps for its histograms (until the next one)."""
    seen: set[int] = set()
    total = 0
    for found in exposition.histograms.values():
        for _, values in found:
            total += sys.getsizeof(values)
            if isinstance(values, array):  # the doubles are in it
                continue
            for value in values:
                if id(value) not in seen:
                    seen.add(id(value))
                    total += sys.getsizeof(value)
    return total / 2**20


async def snapshot_ms(dsn: str, repeats: int) -> tuple[list[float], float]:
    """A whole /metrics snapshot (every gauge by every label over the last 30 days, no family
    kept from a snapshot before), on one connection."""
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    kpis = one_connection_kpis(conn, now)
    window = resolve_window("30d", start=None, end=None, now=now, start_month=1)
    out = []
    held = 0.0
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            taken = await kpis.exposition(groupings=groupings(rep_labels=False), window=window)
            out.append((time.perf_counter() - started) * 1000)
            held = held_mib(taken)
    finally:
        await conn.close()
    return out, held


async def measure(step: Step, url: str, dsn: str, repeats: int, concurrent: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers=API, timeout=600) as http:
        for what, path in QUERIES:
            await http.get(path)  # unmeasured: caches, plans
            for _ in range(repeats):
                started = time.perf_counter()
                r = await http.get(path)
                step.ms.setdefault(what, []).append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        before = await computations(http)
        started = time.perf_counter()
        answers = await asyncio.gather(*(http.get(QUERIES[0][1]) for _ in range(concurrent)))
        step.concurrent_ms = (time.perf_counter() - started) * 1000
        assert all(a.status_code == 200 for a in answers)
        after = await computations(http)
        if before is not None and after is not None:
            step.computations = after - before
    step.snapshot_ms, step.histograms_mib = await snapshot_ms(dsn, repeats)


async def run(
    steps: Sequence[int] = STEPS,
    *,
    days: int = DAYS,
    repeats: int = REPEATS,
    concurrent: int = CONCURRENT,
) -> list[Step]:
    stack = Stack.start()
    try:
        # its /metrics snapshot task reads once at the start, then not during the requests
        server = stack.metrics(env={"SALESOPS_METRICS_REFRESH_INTERVAL_MS": "3600000"})
        org = Org(Size(days=days), datetime.now(UTC))
        await metrics_scrape.fill(stack.metrics_dsn, org.roster())
        out: list[Step] = []
        have = 0
        for leads in steps:
            started = time.perf_counter()
            counts = await metrics_scrape.fill(
                stack.metrics_dsn, history(org, leads - have, seed=leads)
            )
            await vacuum(stack.metrics_dsn)  # as autovacuum would have, given time
            step = Step(leads, sum(counts.values()), time.perf_counter() - started)
            have = leads
            await measure(step, server.url, stack.metrics_dsn, repeats, concurrent)
            out.append(step)
        return out
    finally:
        stack.stop()


def report(steps: list[Step], concurrent: int = CONCURRENT) -> str:
    header = ["request (median ms)", *(f"{s.leads:,} leads" for s in steps)]
    rows = [
        [f"`{what}`", *(f"{statistics.median(s.ms[what]):,.0f}" for s in steps)]
        for what, _ in QUERIES
    ]
    rows.append(
        [
            f"{concurrent} × `leads_assigned` at once (wall)",
            *(f"{s.concurrent_ms:,.0f}" for s in steps),
        ]
    )
    rows.append(
        [
            "… computations run for them",
            *("–" if s.computations is None else f"{s.computations:,.0f}" for s in steps),
        ]
    )
    rows.append(
        [
            "a whole `/metrics` snapshot, 30d (in process)",
            *(f"{statistics.median(s.snapshot_ms):,.0f}" for s in steps),
        ]
    )
    rows.append(
        [
            "… MiB of observations it keeps for histograms",
            *(f"{s.histograms_mib:,.1f}" for s in steps),
        ]
    )
    events = ", ".join(f"{s.events:,} events in {s.fill_seconds:.0f} s" for s in steps)
    return "\n".join(
        [
            f"History added per step (all within the window): {events}; half as many deals as "
            "leads, 500 reps, 100 territories.",
            "",
            table(header, rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.metrics_history", description=__doc__)
    p.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="leads, cumulative")
    p.add_argument("--days", type=int, default=DAYS)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--concurrent", type=int, default=CONCURRENT)
    args = p.parse_args(argv)
    steps = uvloop.run(
        run(args.steps, days=args.days, repeats=args.repeats, concurrent=args.concurrent)
    )
    print(report(steps, args.concurrent))


if __name__ == "__main__":
    main()
