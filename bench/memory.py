"""Memory over a long run: 1,000,000 HubSpot events (10,000 signed arrays of 100) into one
ingest process, its RSS (and the broker's) sampled every few seconds.

The arrays are built and signed as they are sent (a pre-signed pool of 10,000 would be
~300 MB in the load generator, and timestamps are only good for 5 minutes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench import payloads
from bench.load import LoadResult, Progress
from bench.report import errors, table
from bench.session import Session

CONNECTIONS = 16
SAMPLE_EVERY = 5.0


def rss_mib(pid: int) -> float:
    """Resident set size from /proc/<pid>/status (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class Sample:
    label: str
    seconds: float
    events: int
    ingest_mib: float
    broker_mib: float
    backlog_items: int


@dataclass
class MemoryRun:
    events: int
    samples: list[Sample] = field(default_factory=list)
    send: LoadResult | None = None
    drained: bool = False


def slope(samples: list[Sample]) -> float:
    """Least-squares ingest RSS growth, MiB per 100,000 events."""
    if len(samples) < 2:
        return float("nan")
    xs = [smp.events / 100_000 for smp in samples]
    ys = [smp.ingest_mib for smp in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


async def run(s: Session, events: int, *, drain_within: float) -> MemoryRun:
    arrays = events // payloads.EVENTS_PER_ARRAY
    out = MemoryRun(events=arrays * payloads.EVENTS_PER_ARRAY)
    post = s.hubspot_post()
    requests = payloads.hubspot_requests(post, s.hubspot_arrays(arrays))
    progress = Progress()
    started = time.perf_counter()
    broker = s.stack.broker_pid

    async def sample(label: str) -> None:
        backlog = await s.backlog()
        out.samples.append(
            Sample(
                label,
                time.perf_counter() - started,
                progress.answered * payloads.EVENTS_PER_ARRAY,
                rss_mib(s.ingest.pid),
                rss_mib(broker),
                backlog.items,
            )
        )

    async def watch() -> None:
        quarters = [(q * arrays // 4, f"{q * 25} %") for q in (1, 2, 3)]
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.1)
            if quarters and progress.answered >= quarters[0][0]:
                await sample(quarters.pop(0)[1])
                last = time.perf_counter()
            elif time.perf_counter() - last >= SAMPLE_EVERY:
                await sample("")
                last = time.perf_counter()

    await sample("start")
    watcher = asyncio.create_task(watch())
    try:
        out.send = await s.load(
            post,
            requests,
            per_request=payloads.EVENTS_PER_ARRAY,
            conns=CONNECTIONS,
            seconds=3600,
            expect=204,
            limit=arrays,
            progress=progress,
        )
        await sample("100 % sent")
        deadline = time.perf_counter() + drain_within
        while time.perf_counter() < deadline:
            if (await s.backlog()).deliveries == 0:
                out.drained = True
                break
            await asyncio.sleep(0.25)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    await sample("processed" if out.drained else "end of wait")
    return out


def report(m: MemoryRun, command: str) -> str:
    assert m.send is not None
    labelled = [smp for smp in m.samples if smp.label]
    rows = [
        [
            smp.label,
            f"{smp.seconds:.0f}",
            f"{smp.events:,}",
            f"{smp.ingest_mib:,.0f}",
            f"{smp.broker_mib:,.0f}",
            f"{smp.backlog_items:,}",
        ]
        for smp in labelled
    ]
    sending = [smp for smp in m.samples if smp.label != "processed" and smp.label != "end of wait"]
    half = [smp for smp in sending if smp.events >= m.events // 2]
    start = m.samples[0].ingest_mib
    peak = max(smp.ingest_mib for smp in m.samples)
    lines = [
        f"Command: `{command}`. {m.events:,} events in {m.events // 100:,} signed HubSpot "
        f"arrays of 100, closed loop on {CONNECTIONS} connections, into one ingest process "
        "that has already run the measurements above (its warm-up). RSS from "
        f"`/proc/<pid>/status` every {SAMPLE_EVERY:g} s ({len(m.samples)} samples).",
        "",
        table(
            (
                "point",
                "s",
                "events acknowledged",
                "ingest RSS MiB",
                "broker RSS MiB",
                "processor backlog (items)",
            ),
            rows,
        ),
        "",
        f"Sending took {m.send.seconds:.0f} s ({m.send.eps:,.0f} events/s, "
        f"p99 {m.send.p99:.1f} ms, errors {errors(m.send)}). Ingest RSS: "
        f"{start:,.0f} MiB at the start, peak {peak:,.0f} MiB; slope while sending "
        f"**{slope(sending):+.2f} MiB per 100,000 events** over the whole run, "
        f"{slope(half):+.2f} over its second half.",
    ]
    if not m.drained:
        lines[-1] += (
            " The processor had not finished when the wait ended (its backlog is in the "
            "table's last row)."
        )
    return "\n".join(lines)
