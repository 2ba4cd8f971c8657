"""Accepted-and-durable events per second through ``POST /v1/events`` (single events and
100-event arrays, one process and two), next to the bare endpoint measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass

from bench import payloads
from bench.cpu import CpuShare, cpu_of
from bench.load import LoadResult
from bench.report import LOAD_HEADER, load_row, table
from bench.session import Session

SINGLE_CONNECTIONS = 32
ARRAY_CONNECTIONS = 16


@dataclass
class RestResults:
    single: LoadResult
    single_cpu: CpuShare
    arrays: LoadResult | None = None
    arrays_cpu: CpuShare | None = None
    two: LoadResult | None = None
    two_cpu: CpuShare | None = None


async def single_events(s: Session) -> RestResults:
    post = s.events_post()
    with cpu_of(s.pids()) as cpu:
        one = await s.load(post, post.of(payloads.single("s")), conns=SINGLE_CONNECTIONS)
    return RestResults(one, cpu)


async def arrays(s: Session, results: RestResults) -> None:
    post = s.events_post()
    with cpu_of(s.pids()) as cpu:
        results.arrays = await s.load(
            post,
            post.of(payloads.batch("h", 100)),
            per_request=100,
            conns=ARRAY_CONNECTIONS,
        )
    results.arrays_cpu = cpu


async def two_workers(s: Session, results: RestResults) -> None:
    """Restarts ingest with ``--workers 2`` for one measurement, then with one process."""
    s.restart_ingest(workers=2)
    post = s.events_post()
    await s.load(post, post.of(payloads.batch("warm2", 100)), per_request=100, conns=16, seconds=2)
    with cpu_of(s.pids()) as cpu:
        results.two = await s.load(
            post, post.of(payloads.batch("w", 100)), per_request=100, conns=ARRAY_CONNECTIONS
        )
    results.two_cpu = cpu
    s.restart_ingest(workers=1)


def report(s: Session, base: LoadResult, r: RestResults) -> str:
    rows = [load_row("bare FastAPI (baseline)", base, base.rps)]
    rows.append(load_row("ingest, single events", r.single, base.rps))
    cpu = [f"- single events: {r.single_cpu.line(r.single.seconds)}"]
    if r.arrays is not None and r.arrays_cpu is not None:
        rows.append(load_row("ingest, 100-event arrays", r.arrays, base.rps))
        cpu.append(f"- 100-event arrays: {r.arrays_cpu.line(r.arrays.seconds)}")
    if r.two is not None and r.two_cpu is not None:
        rows.append(load_row("ingest ×2 workers, 100-event arrays", r.two, base.rps))
        cpu.append(f"- 100-event arrays, 2 workers: {r.two_cpu.line(r.two.seconds)}")
    lines = [
        f"{s.seconds:g} s per measurement; {SINGLE_CONNECTIONS} connections for single "
        f"events, {ARRAY_CONNECTIONS} for arrays; `salesops serve ingest` (one process unless "
        "said); PostgreSQL with fsync on; load generator on the same machine.",
        "",
        table(LOAD_HEADER, rows),
        "",
        f"Single-event requests per second vs the bare endpoint: "
        f"**{r.single.rps / base.rps:.2f}**.",
    ]
    if r.arrays is not None:
        lines[-1] += (
            f" 100-event arrays: **{r.arrays.eps:,.0f} events/s** on one process "
            f"(issue 2's target ≥ 5,000)."
        )
    return "\n".join([*lines, "", "CPU during each measurement:", *cpu])
