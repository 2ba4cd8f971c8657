"""How long metrics takes to answer a scrape and a KPI request over a database of a known size:
``GET /metrics``, ``GET /v1/kpis`` (the listing) and single KPIs, against ``salesops serve
metrics`` (default settings: the gauges over the last 30 days) on a stack of its own.

The database is filled straight through metrics' projection code (what its consumer writes
for each batch: the event log, projections and event counts), from
:mod:`bench.metrics_org`'s generated organisation: the broker is not in the way of filling it,
and the service reads exactly what it would after consuming those events. The report says how
much room that took, the event log's (which is never pruned) apart.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx

from bench.metrics_org import Org, Size
from bench.report import table
from bench.stack import TOKEN, Server, Stack
from salesops_common.envelope import Envelope
from salesops_metrics.adapters import repository
from salesops_metrics.domain.facts import QuotaFact
from salesops_metrics.domain.projection import effects_of

API = {"Authorization": f"Bearer {TOKEN}"}
FILL_BATCH = 5_000
REPEATS = 5
TARGET_SCRAPE_MS = 100.0
# (what, path): single KPIs as a dashboard or a manager asks for them
QUERIES: tuple[tuple[str, str], ...] = (
    ("win_rate, 30d, by territory", "/v1/kpis?kpi=win_rate&window=30d&group_by=territory"),
    ("win_rate, all time", "/v1/kpis?kpi=win_rate"),
    ("sales_cycle_p90, 90d, by team", "/v1/kpis?kpi=sales_cycle_p90&window=90d&group_by=team"),
    (
        "lead_response_business_median, 30d, by territory",
        "/v1/kpis?kpi=lead_response_business_median&window=30d&group_by=territory",
    ),
    ("lead_response_median, all time", "/v1/kpis?kpi=lead_response_median"),
    ("stage_conversion, quarter", "/v1/kpis?kpi=stage_conversion&window=quarter"),
    (
        "technology_adoption, 30d, by tool",
        "/v1/kpis?kpi=technology_adoption&window=30d&group_by=tool",
    ),
)


@dataclass(frozen=True)
class Room:
    """Bytes on disk (tables with their indexes and TOAST), after a fill."""

    database: int
    event_log: int
    logged: int  # events in the log

    def describe(self) -> str:
        per_event = self.event_log / max(self.logged, 1)
        return (
            f"The database then took {self.database / 2**20:,.0f} MiB, of which the event log "
            f"{self.event_log / 2**20:,.0f} MiB ({self.logged:,} events, {per_event:,.0f} bytes "
            "an event with its indexes)."
        )


async def room(dsn: str) -> Room:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        row = await conn.fetchrow(
            "SELECT pg_database_size(current_database()) AS db, "
            "pg_total_relation_size('event_log') AS log, (SELECT count(*) FROM event_log) AS n"
        )
        assert row is not None
        return Room(int(row["db"]), int(row["log"]), int(row["n"]))
    finally:
        await conn.close()


async def fill(dsn: str, events: Iterable[Envelope]) -> Counter[str]:
    """Log and project ``events`` as the consumer would, ``FILL_BATCH`` to a transaction."""
    conn = await asyncpg.connect(dsn)
    counts: Counter[str] = Counter()
    try:
        batch: list[Envelope] = []

        async def flush() -> None:
            async with conn.transaction():
                await repository.log_events(conn, batch)
                effects = [e for event in batch for e in effects_of(event)]
                await repository.write_effects(conn, effects)
                await repository.add_event_counts(conn, Counter(e.type for e in batch))
            counts.update(e.type for e in batch)
            batch.clear()

        for event in events:
            batch.append(event)
            if len(batch) >= FILL_BATCH:
                await flush()
        if batch:
            await flush()
        async with conn.transaction():
            await repository.save_rates(conn, {"EUR": Decimal("1.08")})
            await repository.save_quotas(conn, quotas())
    finally:
        await conn.close()
    return counts


def quotas() -> list[QuotaFact]:
    now = datetime.now(UTC)
    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    out = [QuotaFact(quarter, "company", None, Decimal(5_000_000), "USD")]
    out += [QuotaFact(quarter, "team", f"team-{t:02d}", Decimal(100_000), "USD") for t in range(50)]
    return out


@dataclass
class Timing:
    what: str
    ms: list[float] = field(default_factory=list)
    size: int = 0  # bytes of the last answer
    series: int = 0  # samples of a scrape

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    def row(self) -> list[str]:
        return [
            self.what,
            f"{self.median:,.1f}",
            f"{min(self.ms):,.1f}",
            f"{max(self.ms):,.1f}",
            f"{self.size / 1024:,.0f}",
            f"{self.series:,}" if self.series else "–",
        ]


async def timed(http: httpx.AsyncClient, what: str, url: str, repeats: int) -> Timing:
    timing = Timing(what)
    for _ in range(repeats):
        started = time.perf_counter()
        r = await http.get(url)
        timing.ms.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
        timing.size = len(r.content)
    if url.endswith("/metrics"):
        timing.series = sum(
            1 for line in r.text.splitlines() if line.startswith("salesops_metrics_")
        )
    return timing


async def measure(server: Server, repeats: int = REPEATS) -> list[Timing]:
    async with httpx.AsyncClient(base_url=server.url, headers=API, timeout=300) as http:
        await http.get("/metrics")  # the first answer pays for imports and caches
        out = [await timed(http, "`GET /metrics`", "/metrics", repeats)]
        out.append(await timed(http, "`GET /v1/kpis` (the listing)", "/v1/kpis", repeats))
        for what, url in QUERIES:
            out.append(await timed(http, f"`{what}`", url, repeats))
    return out


@dataclass
class ScrapeResults:
    size: Size
    counts: Counter[str]
    fill_seconds: float
    timings: list[Timing]
    server: str
    room: Room
    repeats: int = REPEATS

    @property
    def scrape_ms(self) -> float:
        return self.timings[0].median


async def run(size: Size | None = None, repeats: int = REPEATS) -> ScrapeResults:
    size = size or Size()
    stack = Stack.start()
    try:
        server = stack.metrics()
        org = Org(size, datetime.now(UTC))
        started = time.perf_counter()
        counts = await fill(stack.metrics_dsn, [*org.roster(), *org.history()])
        filled = time.perf_counter() - started
        taken = await room(stack.metrics_dsn)
        timings = await measure(server, repeats)
        return ScrapeResults(size, counts, filled, timings, server.command, taken, repeats)
    finally:
        stack.stop()


HEADER = ("request", "median ms", "min ms", "max ms", "KiB", "KPI samples")


def report(r: ScrapeResults) -> str:
    events = sum(r.counts.values())
    kinds = ", ".join(f"{n:,} {t}" for t, n in r.counts.most_common())
    return "\n".join(
        [
            f"`{r.server}` (default settings: gauges over the last 30 days), PostgreSQL with "
            f"fsync on; the database filled with {r.size.describe()} ({events:,} events "
            f"projected in {r.fill_seconds:.0f} s: {kinds}). Each request {r.repeats} times "
            f"after one unmeasured scrape, one at a time, from this process. {r.room.describe()}",
            "",
            table(HEADER, [t.row() for t in r.timings]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.metrics_scrape", description=__doc__)
    p.add_argument("--deals", type=int, default=Size.deals)
    p.add_argument("--leads", type=int, default=Size.leads)
    p.add_argument("--repeats", type=int, default=REPEATS)
    args = p.parse_args(argv)
    size = Size(deals=args.deals, leads=args.leads)
    print(report(uvloop.run(run(size, args.repeats))))


if __name__ == "__main__":
    main()
