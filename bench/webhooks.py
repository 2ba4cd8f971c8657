"""Issue 3: the CRM webhook receivers on one ingest process.

- signed HubSpot deliveries of 100 ``contact.propertyChange`` events: the maximum accepted
  rate (closed loop) and the latency at a fixed 200 requests/s (20,000 events/s);
- single-event requests (a Pipedrive webhook v2 event with HTTP Basic credentials, and
  ``POST /v1/events`` with one event) against the bare endpoint given the same body;
- the processor's drain rate: deliveries turned into canonical events per second once the
  requests stop.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from bench import payloads
from bench.cpu import CpuShare, cpu_of
from bench.load import LoadResult, Post
from bench.report import errors, table, verdict
from bench.session import Backlog, Session

HUBSPOT_CONNECTIONS = 16
PIPEDRIVE_CONNECTIONS = 32
FIXED_RATE = 200.0  # requests/s: 20,000 events/s in arrays of 100
FIXED_RATE_CONNECTIONS = 64
EVENTS_TARGET = 20_000
SINGLE_TARGET = 0.5
# Enough pre-signed arrays for a closed loop up to 700 requests/s (70,000 events/s).
POOL_PER_SECOND = 700


# -- single-event requests ------------------------------------------------------------------


@dataclass
class SingleResults:
    bare_event: LoadResult
    bare_pipedrive: LoadResult
    pipedrive: LoadResult
    pipedrive_cpu: CpuShare
    api: LoadResult | None = None  # POST /v1/events, one event (from ingest_throughput)


async def bare_pipedrive(s: Session) -> LoadResult:
    post = s.events_post(s.baseline)
    return await s.load(
        post, post.of(lambda n: payloads.pipedrive_event("bare", n)), conns=PIPEDRIVE_CONNECTIONS
    )


async def pipedrive(s: Session) -> tuple[LoadResult, CpuShare]:
    post = s.pipedrive_post()
    with cpu_of(s.pids()) as cpu:
        result = await s.load(
            post,
            s.pipedrive_requests(post),
            conns=PIPEDRIVE_CONNECTIONS,
            expect=200,
        )
    return result, cpu


def single_report(r: SingleResults) -> str:
    def row(name: str, result: LoadResult, base: LoadResult) -> list[str]:
        return [
            name,
            f"{result.rps:,.0f}",
            f"{result.p50:.1f}",
            f"{result.p99:.1f}",
            errors(result),
            f"{result.rps / base.rps:.2f}",
        ]

    rows = [
        row("bare FastAPI, canonical event body (baseline)", r.bare_event, r.bare_event),
        row("bare FastAPI, Pipedrive body (baseline)", r.bare_pipedrive, r.bare_pipedrive),
        row("`POST /webhooks/pipedrive` (Basic auth, one v2 event)", r.pipedrive, r.bare_pipedrive),
    ]
    if r.api is not None:
        rows.append(row("`POST /v1/events`, one event", r.api, r.bare_event))
    ratio = r.pipedrive.rps / r.bare_pipedrive.rps
    lines = [
        table(
            ("endpoint", "requests/s", "p50 ms", "p99 ms", "errors", "÷ bare, same body"),
            rows,
        ),
        "",
        f"{PIPEDRIVE_CONNECTIONS} connections. Each request is answered once its delivery "
        "is committed (the Pipedrive webhook: stored raw, processed later; "
        "`POST /v1/events`: applied in the request's transaction). The bare endpoint parses "
        "the same body and answers 202.",
        "",
        f"Pipedrive webhook vs the bare endpoint: **{ratio:.2f}** (issue 3's target "
        f"≥ {SINGLE_TARGET}: {verdict(ratio >= SINGLE_TARGET)}).",
    ]
    if r.api is not None:
        lines[-1] += f" `POST /v1/events` with one event: **{r.api.rps / r.bare_event.rps:.2f}**."
    lines += ["", f"- Pipedrive webhook: {r.pipedrive_cpu.line(r.pipedrive.seconds)}"]
    return "\n".join(lines)


# -- HubSpot arrays -------------------------------------------------------------------------


@dataclass
class HubSpotRun:
    name: str
    result: LoadResult
    cpu: CpuShare
    sign_seconds: float


async def hubspot(s: Session, *, rate: float | None, seconds: float) -> HubSpotRun:
    """Pre-sign the run's arrays (timestamps: now), then send them."""
    post: Post = s.hubspot_post()
    count = int(seconds * (rate or POOL_PER_SECOND)) + 1
    signing = time.perf_counter()
    arrays = s.hubspot_arrays(count)
    requests = payloads.presigned(payloads.hubspot_requests(post, arrays), count)
    sign_seconds = time.perf_counter() - signing
    with cpu_of(s.pids()) as cpu:
        result = await s.load(
            post,
            requests,
            per_request=payloads.EVENTS_PER_ARRAY,
            conns=FIXED_RATE_CONNECTIONS if rate else HUBSPOT_CONNECTIONS,
            seconds=seconds,
            expect=204,
            rate=rate,
        )
    if rate is None:
        name = f"closed loop, {HUBSPOT_CONNECTIONS} connections"
    else:
        name = f"fixed rate {rate:g} requests/s, up to {FIXED_RATE_CONNECTIONS} connections"
    return HubSpotRun(name, result, cpu, sign_seconds)


def hubspot_report(
    s: Session, runs: list[HubSpotRun], base: LoadResult, acknowledged: int, stored: int
) -> str:
    rows = []
    for run in runs:
        r = run.result
        late = f"{r.max_lag * 1000:.0f}" if r.rate else "–"
        rows.append(
            [
                run.name,
                f"{r.rps:,.1f}",
                f"{r.eps:,.0f}",
                f"{r.p50:.1f}",
                f"{r.p99:.1f}",
                f"{r.pct(0.999):.1f}",
                late,
                errors(r),
                f"{r.eps / base.rps:.2f}",
            ]
        )
    header = (
        "load",
        "requests/s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max wait for a connection ms",
        "errors",
        "events/s ÷ bare rps",
    )
    closed = runs[0].result
    lines = [
        table(header, rows),
        "",
        f"{s.seconds:g} s per run. Each request: a JSON array of 100 `contact.propertyChange` "
        f"events (~{len(payloads.HubSpotArrays(0, 0).body(0)) / 1024:.0f} KiB, every eventId "
        "distinct), signed v3 (HMAC-SHA256 with the client secret over method, "
        f"`{payloads.PUBLIC_BASE_URL}{payloads.HUBSPOT_PATH}` via `SALESOPS_PUBLIC_BASE_URL`, "
        "body and timestamp), pre-signed just before the run; answered 204 once the delivery "
        "is committed. `SALESOPS_INGEST_RATE_LIMIT=0`. The fixed-rate run sends request i at "
        "start + i/200 s whatever the earlier answers did, and its latencies count from that "
        "moment (no coordinated omission). The processor runs in the same process during "
        "both runs, turning the deliveries into canonical events.",
        "",
        f"Maximum accepted rate: **{closed.eps:,.0f} events/s** "
        f"(issue 3's target ≥ {EVENTS_TARGET:,}: {verdict(closed.eps >= EVENTS_TARGET)}), "
        f"p99 {closed.p99:.1f} ms.",
    ]
    for run in runs[1:]:
        r = run.result
        kept = "every request answered" if r.kept_up else f"{r.requests:,} of {r.scheduled:,} due"
        lines[-1] += (
            f" At a fixed {r.rate:g} requests/s: {r.eps:,.0f} events/s accepted ({kept}), "
            f"**p99 {r.p99:.1f} ms**."
        )
    lines += [
        f"Durability check: {acknowledged:,} HubSpot events acknowledged with 204 in the "
        f"whole benchmark so far, {stored:,} stored in `deliveries`.",
        "",
        *(f"- {run.name}: {run.cpu.line(run.result.seconds)}" for run in runs),
    ]
    return "\n".join(lines)


# -- diagnosis: the same requests with the processor switched off ---------------------------


@dataclass
class WithoutProcessor:
    pipedrive: LoadResult
    pipedrive_cpu: CpuShare
    runs: list[HubSpotRun]


async def without_processor(s: Session) -> WithoutProcessor:
    """Restart ingest with its processor switched off (bench/noprocessor.py) and repeat
    the Pipedrive and HubSpot runs. Leaves that ingest running."""
    s.restart_ingest(processor=False)
    pd_post, hs_post = s.pipedrive_post(), s.hubspot_post()
    await s.load(pd_post, s.pipedrive_requests(pd_post, 100_000), conns=8, seconds=2, expect=200)
    await s.load(
        hs_post,
        payloads.hubspot_requests(hs_post, s.hubspot_arrays(100)),
        per_request=100,
        conns=8,
        seconds=2,
        expect=204,
        limit=100,
    )
    pd, pd_cpu = await pipedrive(s)
    runs = [
        await hubspot(s, rate=None, seconds=s.seconds),
        await hubspot(s, rate=FIXED_RATE, seconds=s.seconds),
    ]
    return WithoutProcessor(pd, pd_cpu, runs)


def without_processor_report(
    single: SingleResults, runs: list[HubSpotRun], off: WithoutProcessor
) -> str:
    bare = single.bare_pipedrive.rps

    def cpu(share: CpuShare, seconds: float) -> str:
        return f"{share.used.get('ingest', 0.0) / seconds:.0%}"

    rows = [
        [
            "Pipedrive webhook: requests/s (÷ bare, same body)",
            f"{single.pipedrive.rps:,.0f} ({single.pipedrive.rps / bare:.2f})",
            f"{off.pipedrive.rps:,.0f} ({off.pipedrive.rps / bare:.2f})",
        ],
        [
            "Pipedrive webhook: p99 ms",
            f"{single.pipedrive.p99:.1f}",
            f"{off.pipedrive.p99:.1f}",
        ],
        [
            "Pipedrive webhook: ingest CPU",
            cpu(single.pipedrive_cpu, single.pipedrive.seconds),
            cpu(off.pipedrive_cpu, off.pipedrive.seconds),
        ],
    ]
    for on_run, off_run in zip(runs, off.runs, strict=True):
        on, no = on_run.result, off_run.result
        rows += [
            [
                f"HubSpot, {on_run.name}: events/s",
                f"{on.eps:,.0f}",
                f"{no.eps:,.0f}",
            ],
            [
                f"HubSpot, {on_run.name}: p50 / p99 / p99.9 ms",
                f"{on.p50:.1f} / {on.p99:.1f} / {on.pct(0.999):.1f}",
                f"{no.p50:.1f} / {no.p99:.1f} / {no.pct(0.999):.1f}",
            ],
            [
                f"HubSpot, {on_run.name}: ingest CPU",
                cpu(on_run.cpu, on.seconds),
                cpu(off_run.cpu, no.seconds),
            ],
        ]
    return "\n".join(
        [
            "Command: `python -m bench --without-processor`. The same runs on an ingest "
            "process whose background processor is switched off (`python -m "
            "bench.noprocessor serve ingest`: deliveries are stored and answered as usual, "
            "and stay pending). A diagnosis of what the processor, on the same event loop, "
            "costs the requests; not a configuration.",
            "",
            table(("measurement", "processor on (above)", "processor off"), rows),
        ]
    )


# -- the processor's drain rate -------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    at: float
    backlog: Backlog
    outbox: int


async def snapshot(s: Session) -> Snapshot:
    backlog = await s.backlog()
    outbox, _ = await s.outbox()
    return Snapshot(time.perf_counter(), backlog, outbox)


@dataclass
class Processing:
    """What the processor did during a run and in the window after it."""

    run: str
    run_seconds: float
    processed_during: int  # items
    left: Backlog  # pending when the run ended
    drained: int  # items processed after the run, within the window
    drain_seconds: float
    remaining: Backlog  # pending when the window ended
    outbox_events: int  # canonical events written from the run's start to the window's end
    items: int  # items processed in that time
    cpu: CpuShare  # during the window

    @property
    def during_rate(self) -> float:
        return self.processed_during / self.run_seconds

    @property
    def after_rate(self) -> float:
        return self.drained / self.drain_seconds if self.drain_seconds > 0.5 else float("nan")


async def processing(
    s: Session, run: str, before: Snapshot, accepted_items: int, window: float
) -> Processing:
    """Call right after a run that accepted ``accepted_items`` webhook items and started
    at ``before``: waits until the processor owes nothing or ``window`` seconds passed."""
    ended = await snapshot(s)
    with cpu_of(s.pids()) as cpu:
        await s.wait_drained(window)
    final = await snapshot(s)
    processed_during = before.backlog.items + accepted_items - ended.backlog.items
    return Processing(
        run=run,
        run_seconds=ended.at - before.at,
        processed_during=processed_during,
        left=ended.backlog,
        drained=ended.backlog.items - final.backlog.items,
        drain_seconds=final.at - ended.at,
        remaining=final.backlog,
        outbox_events=final.outbox - before.outbox,
        items=before.backlog.items + accepted_items - final.backlog.items,
        cpu=cpu,
    )


def processing_report(
    runs: list[Processing],
    base: LoadResult,
    window: float,
    fetch_jobs: int,
    unsent: int,
    warnings: Counter[str],
    unknown: int,
) -> str:
    def rate(value: float) -> str:
        return "–" if value != value else f"{value:,.0f}"  # NaN: too short to say

    rows = [
        [
            p.run,
            rate(p.during_rate),
            f"{p.left.items:,}",
            rate(p.after_rate),
            f"{p.drain_seconds:.1f}",
            f"{p.remaining.items:,}",
            f"{p.outbox_events / p.items:.2f}" if p.items else "–",
            f"{p.during_rate / base.rps:.2f} / "
            + ("–" if p.after_rate != p.after_rate else f"{p.after_rate / base.rps:.2f}"),
        ]
        for p in runs
    ]
    header = (
        "run",
        "items/s processed during the run",
        "items pending at its end",
        "items/s processed after it",
        "s waited after it",
        "items still pending",
        "canonical events per item",
        "÷ bare rps (during / after)",
    )
    lines = [
        table(header, rows),
        "",
        "The processor (a background task of the same ingest process) turns stored "
        "deliveries into canonical events: 16 deliveries per transaction. *During* a run it "
        "shares the process with the requests; *after* it, nothing else is sent and the "
        "backlog is polled (`SELECT ... FROM deliveries WHERE processed_at IS NULL`, every "
        f"0.25 s) until nothing is pending or {window:g} s have passed. HubSpot items: half "
        f"change one of {payloads.KNOWN_CONTACTS:,} contacts created beforehand through "
        f"`POST /v1/events` (`source: hubspot`, `tenant: {payloads.HUBSPOT_PORTAL}`), each "
        "change a new value of `hs_lead_status`, `industry` or `annualrevenue`, so each "
        f"becomes a `lead.updated`; the other half change {unknown:,} "
        "contacts ingest has never seen, which become CRM fetch jobs (no HubSpot API is "
        f"configured, so they stay queued: {fetch_jobs:,} at the end). Pipedrive items: a "
        f"person's owner changed ({payloads.PIPEDRIVE_PERSONS:,} persons in turn; the first "
        "change of each creates the lead). Outbox rows not yet published to the broker when "
        f"the last window ended: {unsent:,}.",
        "",
        *(f"- after {p.run}: {p.cpu.line(p.drain_seconds)}" for p in runs if p.drain_seconds > 1),
    ]
    if warnings:
        lines += ["", "Warnings and errors in the ingest logs during the benchmark:"]
        lines += [f"- {n:,}× `{message}`" for message, n in warnings.most_common(10)]
    return "\n".join(lines)
