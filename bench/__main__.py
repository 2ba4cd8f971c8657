"""``make bench``: run every benchmark and print Markdown for docs/benchmarks.md.

One set of servers for the ingest benchmarks (embedded PostgreSQL with fsync on, the Tansu
broker, one ``salesops serve ingest`` process, the bare baseline app); every figure is
reported with its ratio to the baseline measured in the same run, since the shared 2-core
machine drifts by tens of percent between runs.

The routing benchmarks (issue 4) run first: the decision in this process
(bench/routing_decision.py, next to a 10-rule model), then ``lead.created`` ->
``lead.assigned`` through ingest and routing on a stack of their own
(bench/routing_e2e.py, next to ingest -> ``salesops.crm.v1`` alone), stopped before the
ingest benchmarks start theirs. ``--no-routing`` skips them, ``--only-routing`` runs only
them.

The metrics benchmarks (issue 5) run next, on a stack of their own too
(bench/metrics_freshness.py): scrape and KPI request times over a 500-rep organisation's
year, then event accepted by ingest -> KPI changed on ``/metrics`` and ``GET /v1/kpis``
while ingest takes 2,000 events/s. ``--no-metrics`` skips them, ``--only-metrics`` runs
only them.

The forecast benchmarks (issue 6) run last, in this process: time-series forecasts of
10,000 scopes with 24 months of history, next to statsforecast's AutoETS on the same series
(bench/forecast_series.py); scoring 100,000 open deals with a trained model, next to the
stage-table lookup (bench/forecast_scoring.py); then a whole run_forecast with them on an
embedded PostgreSQL (bench/forecast_run.py). ``--no-forecast`` skips them,
``--only-forecast`` runs only them.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from collections.abc import Sequence

import uvloop

from bench import (
    forecast_run,
    forecast_scoring,
    forecast_series,
    ingest_rest,
    ingest_throughput,
    memory,
    metrics_freshness,
    payloads,
    routing_decision,
    routing_e2e,
    webhooks,
)
from bench.load import LoadResult
from bench.metrics_org import Size
from bench.report import LOAD_HEADER, load_row, table
from bench.session import Session
from bench.stack import PROFILE_ENV, Stack


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement (10)")
    p.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the 1,000,000-event memory run (on by default: the whole bench takes ~5 min; "
        "--no-memory skips it)",
    )
    p.add_argument("--memory-events", type=int, default=1_000_000)
    p.add_argument(
        "--without-processor",
        action="store_true",
        help="also repeat the webhook runs with ingest's processor switched off (diagnosis)",
    )
    p.add_argument(
        "--hubspot-unknown",
        type=int,
        default=payloads.KNOWN_CONTACTS,
        help="never-seen contacts the HubSpot events cycle over (1000)",
    )
    p.add_argument(
        "--drain-window",
        type=float,
        default=45.0,
        help="longest wait for the processor after each webhook run, seconds (45)",
    )
    p.add_argument(
        "--memory-drain",
        type=float,
        default=30.0,
        help="how long the memory run keeps sampling while the processor works on (30 s; "
        "a long one lets it finish)",
    )
    p.add_argument(
        "--routing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the routing benchmarks: the decision with 10,000 territories in this process, "
        "and lead.created -> lead.assigned through ingest and routing on their own stack "
        "(on by default; --no-routing skips them)",
    )
    p.add_argument(
        "--only-routing",
        action="store_true",
        help="the routing benchmarks alone (no ingest measurements)",
    )
    p.add_argument(
        "--routing-drain",
        type=float,
        default=60.0,
        help="longest wait for the last leads' lead.assigned after each routing run, s (60)",
    )
    p.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the metrics benchmarks: scrape and KPI requests over a 500-rep organisation's "
        "year, and event accepted -> KPI changed at 2,000 events/s, on their own stack "
        "(on by default; --no-metrics skips them)",
    )
    p.add_argument(
        "--only-metrics",
        action="store_true",
        help="the metrics benchmarks alone",
    )
    p.add_argument(
        "--only-rest",
        action="store_true",
        help="POST /v1/events alone at the rates issues 4 and 5 ask of ingest, next to the "
        "bare endpoint (bench/ingest_rest.py, ~1.5 min)",
    )
    p.add_argument(
        "--metrics-seconds",
        type=float,
        default=30.0,
        help="how long ingest is fed for the freshness measurement, s (30)",
    )
    p.add_argument(
        "--metrics-deals",
        type=int,
        default=Size.deals,
        help=f"deals in the organisation's year of history ({Size.deals:,}; leads twice as many)",
    )
    p.add_argument(
        "--forecast",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the forecast benchmarks: 10,000 scopes' time series next to statsforecast, "
        "scoring 100,000 open deals, and a whole run with them on PostgreSQL (on by default; "
        "--no-forecast skips them)",
    )
    p.add_argument("--only-forecast", action="store_true", help="the forecast benchmarks alone")
    p.add_argument(
        "--forecast-subset",
        type=int,
        default=200,
        help="series statsforecast is timed on, extrapolated to 10,000 (200)",
    )
    p.add_argument(
        "--routing-low-rate",
        type=float,
        default=routing_e2e.LOW_RATE,
        help="leads/s of the second end-to-end run, where routing keeps up (20; 0 skips it)",
    )
    return p.parse_args(argv)


async def seed_and_warm(s: Session) -> None:
    """Create the HubSpot contacts the webhook runs change, and warm every path up."""
    known = payloads.known_contact_events("seed")
    post = s.events_post()
    chunks = [known[i : i + 100] for i in range(0, len(known), 100)]
    seeded = await s.load(
        post,
        post.of(lambda n: ("[" + ",".join(chunks[n]) + "]").encode()),
        per_request=100,
        conns=1,
        seconds=120,
        limit=len(chunks),
    )
    if seeded.errors or seeded.requests != len(chunks):
        raise RuntimeError(f"seeding the known contacts failed: {seeded.unexpected()}")
    base_post = s.events_post(s.baseline)
    await s.load(base_post, base_post.of(payloads.single("warm")), conns=32, seconds=2)
    await warm(s)


async def warm(s: Session) -> None:
    """A few seconds of each ingest path, then wait for the processor."""
    post = s.events_post()
    await s.load(post, post.of(payloads.single(f"warm{s.ingest.pid}")), conns=32, seconds=2)
    hs = s.hubspot_post()
    await s.load(
        hs,
        payloads.hubspot_requests(hs, s.hubspot_arrays(100)),
        per_request=100,
        conns=8,
        seconds=2,
        expect=204,
        limit=100,
    )
    pd = s.pipedrive_post()
    await s.load(
        pd,
        s.pipedrive_requests(pd, 100_000),
        conns=8,
        seconds=2,
        expect=200,
    )
    if not await s.wait_drained(within=120):
        raise RuntimeError("the processor did not drain the warm-up deliveries in 2 minutes")


async def bare(s: Session) -> LoadResult:
    post = s.events_post(s.baseline)
    return await s.load(post, post.of(payloads.single("b")), conns=32)


async def measure(args: argparse.Namespace, command: str) -> str:
    """The routing benchmarks first (the decision in this process, then the end-to-end run
    on a stack of its own, stopped before the ingest benchmarks start theirs), then the
    metrics ones (a stack of their own too), the forecast ones (in this process), then
    ``POST /v1/events`` alone at issues 4's and 5's rates; reported after the ingest ones."""
    routing: list[str] = []
    only_flags = {"routing": args.only_routing, "metrics": args.only_metrics}
    only_flags["forecast"] = args.only_forecast
    only_flags["rest"] = args.only_rest
    only = any(only_flags.values())

    def wanted(name: str, on: bool) -> bool:
        return only_flags[name] or (on and not only)

    if wanted("routing", args.routing):
        routing = await measure_routing(args)
    metrics: list[str] = []
    if wanted("metrics", args.metrics):
        metrics = await measure_metrics(args)
    forecast: list[str] = []
    if wanted("forecast", args.forecast):
        forecast = await measure_forecast(args)
    rest: list[str] = []
    if wanted("rest", True):
        result = await ingest_rest.run(args.seconds)
        rest = ["## `POST /v1/events` alone", "", ingest_rest.report(result)]
    parts = ["\n".join(part) for part in (routing, metrics, forecast, rest) if part]
    if only:
        return "\n\n".join(parts)
    ingest = await measure_ingest(args, command)
    return "\n\n".join([ingest, *parts])


async def measure_forecast(args: argparse.Namespace) -> list[str]:
    result = forecast_series.run(subset=args.forecast_subset)
    return [
        "## Forecast (issue 6)",
        "",
        "### Series: 10,000 scopes × 24 months, next to statsforecast's AutoETS",
        "",
        forecast_series.report(result),
        "",
        "### Scoring: 100,000 open deals",
        "",
        forecast_scoring.report(forecast_scoring.run()),
        "",
        "### A whole forecast run with 100,000 open deals, on PostgreSQL",
        "",
        forecast_run.report(await forecast_run.measure(100_000, 20_000)),
    ]


async def measure_routing(args: argparse.Namespace) -> list[str]:
    decisions = routing_decision.run()
    routing = [
        "## Routing (issue 4)",
        "",
        "### Routing decision: 10,000 territories / 50,000 rules next to 10 rules",
        "",
        routing_decision.report(decisions),
    ]
    # Leads as CRMs push them (several to a webhook delivery), then one per REST call.
    for per_request in (routing_e2e.CRM_BATCH, 1):
        e2e = await routing_e2e.run(
            args.seconds,
            drain_within=args.routing_drain,
            low_rate=args.routing_low_rate,
            how=routing_e2e.Load(per_request=per_request),
        )
        routing += [
            "",
            "### `lead.created` accepted by ingest → `lead.assigned` on "
            f"`salesops.routing.v1`: {e2e.how.describe()}",
            "",
            routing_e2e.report(e2e),
        ]
    return routing


async def measure_metrics(args: argparse.Namespace) -> list[str]:
    size = Size(deals=args.metrics_deals, leads=2 * args.metrics_deals)
    fresh = await metrics_freshness.run(args.metrics_seconds, size=size)
    return [
        "## Metrics (issue 5)",
        "",
        "### Scrape and KPI requests; event accepted by ingest → KPI changed",
        "",
        metrics_freshness.report(fresh),
    ]


async def measure_ingest(args: argparse.Namespace, command: str) -> str:
    stack = Stack.start()
    db = None
    try:
        baseline = stack.baseline()
        ingest = stack.ingest()
        db = await stack.connect()
        s = Session(stack, baseline, ingest, db, args.seconds)
        s.unknown_contacts = args.hubspot_unknown
        await seed_and_warm(s)
        window = args.drain_window
        with s.phase(None):
            base = await bare(s)
            base_pd = await webhooks.bare_pipedrive(s)
        with s.phase("rest-single"):
            rest = await ingest_throughput.single_events(s)
        before = await webhooks.snapshot(s)
        with s.phase("pipedrive"):
            pd, pd_cpu = await webhooks.pipedrive(s)
        processed = [await webhooks.processing(s, "Pipedrive", before, pd.requests, window)]
        with s.phase("rest-arrays"):
            await ingest_throughput.arrays(s, rest)
        await ingest_throughput.two_workers(s, rest)
        await warm(s)
        runs = []
        for name, rate in (("closed loop", None), ("fixed rate", webhooks.FIXED_RATE)):
            before = await webhooks.snapshot(s)
            with s.phase(f"hubspot-{name.replace(' ', '-')}"):
                run = await webhooks.hubspot(s, rate=rate, seconds=args.seconds)
            with s.phase(f"processing-after-{name.replace(' ', '-')}"):
                processed.append(
                    await webhooks.processing(
                        s, f"HubSpot, {name}", before, run.result.events, window
                    )
                )
            runs.append(run)
        fetch_jobs = await s.fetch_jobs()
        _, unsent = await s.outbox()
        mem = None
        if args.memory:
            with s.phase("memory"):
                mem = await memory.run(s, args.memory_events, drain_within=args.memory_drain)
        stored = await s.stored_items("hubspot")
        acknowledged = s.hubspot_acknowledged
        warnings = s.ingest_warnings()
        off = await webhooks.without_processor(s) if args.without_processor else None
        s.ingest.stop()  # its processor would still be at work on the backlog
        base_end = await bare(s)
    finally:
        if db is not None:
            await db.close()
        stack.stop()

    single = webhooks.SingleResults(base, base_pd, pd, pd_cpu, rest.single)
    sections = [
        "## Baseline",
        "",
        "A bare FastAPI endpoint that parses the JSON body and answers 202, served by the "
        "same uvicorn configuration as the services (`bench/baseline_app.py`), one "
        "canonical event per request, 32 connections; measured at the start and again at "
        "the end of the run (the difference is the machine's drift during the run).",
        "",
        table(
            LOAD_HEADER,
            [
                load_row("bare FastAPI, start of run", base, base.rps),
                load_row("bare FastAPI, end of run", base_end, base.rps),
            ],
        ),
        "",
        "## Webhooks: signed HubSpot arrays of 100 events (one ingest process)",
        "",
        webhooks.hubspot_report(s, runs, base, acknowledged, stored),
        "",
        "## Webhooks: single-event requests",
        "",
        webhooks.single_report(single),
        "",
        "## Processing rate",
        "",
        webhooks.processing_report(
            processed, base, window, fetch_jobs, unsent, warnings, s.unknown_contacts
        ),
        "",
        "## `POST /v1/events` throughput",
        "",
        ingest_throughput.report(s, base, rest),
    ]
    if mem is not None:
        title = f"## Memory over {mem.events:,} events"
        sections += ["", title, "", memory.report(mem, command)]
    if off is not None:
        sections += [
            "",
            "## Diagnosis: the webhook runs with the processor switched off",
            "",
            webhooks.without_processor_report(single, runs, off),
        ]
    if PROFILE_ENV in stack.env:
        sections += [
            "",
            f"CPU profiles of the one-process ingest, per phase: `{stack.env[PROFILE_ENV]}` "
            "(summarize with `python -m bench.profiled --summary FILE`).",
        ]
    return "\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    command = shlex.join(["python", "-m", "bench", *argv])
    make = f"`make bench BENCH_ARGS={shlex.quote(shlex.join(argv))}`" if argv else "`make bench`"
    started = time.monotonic()
    body = uvloop.run(measure(args, command))
    print(
        f"# Benchmarks — {datetime.date.today()} on {platform.machine()}, "
        f"{platform.python_version()}\n\n"
        f"Command: `{command}` ({make}); {args.seconds:g} s per measurement; the whole "
        f"run took {(time.monotonic() - started) / 60:.1f} min.\n"
    )
    print(body, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
