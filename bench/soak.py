"""``make soak``: a long mixed load on the whole stack, and what it does to latency, memory
and backlogs over time (issue 7, "Load and soak").

One stack of real processes (embedded PostgreSQL with fsync on, the Tansu broker, and
``salesops serve`` ingest, routing, metrics and forecast) with bench/routing_e2e.py's 100
reps, then for ``--minutes`` (20) at fixed rates, open loop (bench/load.py: a latency
counts from when the request was due):

- webhooks: Pipedrive ``person`` changes, one event each (``--webhooks``/s, 30);
- REST writes: ``POST /v1/events`` arrays of 10 (8 ``lead.created``, 2 deals), ``--arrays``/s
  (12): leads that routing assigns and metrics counts, deals that forecast keeps;
- REST reads: routing ``GET /v1/reps``, metrics ``GET /v1/kpis?kpi=leads_assigned``, forecast
  ``GET /v1/pipeline`` (``--reads``/s each, 5);
- routing admin changes: a new ruleset every ``--ruleset-every`` seconds (20), two territory
  models in turn (``PUT /v1/routing/ruleset``).

The defaults ask 150 events/s (30 webhooks/s and 12 arrays of 10/s): half of the 300
events/s the whole stack kept up with in this mix on the 2-core machine (``--capacity``, 2026-11-30:
400 events/s left routing's consumer behind; docs/benchmarks.md, "Soak"). The broker keeps
every event in memory: its RSS is reported, and the load stops early if it passes 8 GiB.

``--capacity 50,100,150,...`` runs a ramp instead (``--step-minutes`` each, 1): the same mix
at each total rate in turn, on one stack, and reports the highest rate the whole stack kept
up with (every request due answered, at most 2 s of work left in outboxes and consumer lags
at the end of the step) and the soak's rates at half of it.

The run is cut into slices (5 minutes; a third of the run when that is shorter) and reports
each slice's p99 per request kind (first vs last), the RSS of every process sampled every
10 s (growth from the end of the first slice to the end), then, once the load stops, how
long each service's outbox backlog and each consumer group's lag take to reach zero
(target: 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench import payloads
from bench.load import LoadResult, Post, RequestMaker, run_load
from bench.memory import rss_mib
from bench.report import table
from bench.routing_e2e import REPS, TENANT, seed_reps
from bench.stack import TOKEN, Server, Stack, _wait_ready
from salesops_cli.infra import free_port
from salesops_common.settings import database_dsn

API = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ARRAY = 10  # events per POST /v1/events
SAMPLE_EVERY = 10.0
DRAIN_TARGET = 10.0
BACKLOG_SECONDS = 2.0  # --capacity: a step kept up if at most this much work was left
WEBHOOK_SHARE = 0.2  # --capacity: the events' split, as in the 25 webhooks + 10 arrays/s runs
DRAIN_LIMIT = 120.0
LAG_TRACE_EVERY = 10.0
BROKER_LIMIT_MIB = 8 * 1024
FORECAST_DATABASE = "bench_forecast"
GROUPS = (
    "salesops-ingest-writeback",
    "salesops-routing-crm",
    "salesops-metrics-all",
    "salesops-forecast-crm",
)

_LEAD = (
    '{"type":"lead.created","source":"api","tenant":"%s","source_event_id":"soak-%s",'
    '"occurred_at":"%s","data":{"source_id":"soak-%s","email":"buyer%s@soak%d.example",'
    '"company":"Soak %d","country":"%s","lead_source":"Web"}}'
)
_DEAL = (
    '{"type":"deal.%s","source":"api","tenant":"%s","source_event_id":"soak-%s-%s",'
    '"occurred_at":"%s","data":{"source_id":"soak-deal-%s","amount":"%d","currency":"USD",'
    '"stage":"%s","owner_source_id":"rep-%d"%s}}'
)


# -- what is sent ---------------------------------------------------------------------------


def _deal(verb: str, key: str, at: str, n: int, stage: str, extra: str = "") -> str:
    amount = 1000 + n % 50 * 100
    return _DEAL % (verb, TENANT, key, verb, at, key, amount, stage, n % REPS, extra)


def events_array(run: str, n: int) -> bytes:
    """Array ``n``: 8 new leads (one in four outside the US), a deal created and the one
    created by the array before closed (won or lost in turn)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    items = []
    for i in range(ARRAY - 2):
        key = f"{run}-{n}-{i}"
        country = "DE" if i % 4 == 0 else "US"
        items.append(_LEAD % (TENANT, key, now, key, key, n % 97, n % 97, country))
    items.append(_deal("created", f"{run}-{n}", now, n, "Engaging"))
    if n:
        outcome = "won" if n % 2 else "lost"
        closed = f',"closed_at":"{now}"'
        items.append(_deal(outcome, f"{run}-{n - 1}", now, n - 1, outcome.title(), closed))
    return ("[" + ",".join(items) + "]").encode()


def rulesets(rep_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Two territory models in turn: everyone in one rotation, or split by country."""
    everyone = {
        "fallback_territory": "all",
        "territories": [
            {"id": "all", "strategy": "round_robin", "members": [{"rep_id": r} for r in rep_ids]}
        ],
    }
    half = len(rep_ids) // 2
    split = {
        "fallback_territory": "us",
        "territories": [
            {
                "id": "dach",
                "strategy": "round_robin",
                "members": [{"rep_id": r} for r in rep_ids[:half]],
                "rules": [{"country": ["DE", "AT", "CH"]}],
            },
            {
                "id": "us",
                "strategy": "round_robin",
                "members": [{"rep_id": r} for r in rep_ids[half:]],
            },
        ],
    }
    return [split, everyone]


def get(url: str) -> RequestMaker:
    parts = urlsplit(url)
    request = (
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {TOKEN}\r\n\r\n"
    ).encode()
    return lambda n: request


# -- what is measured -----------------------------------------------------------------------


@dataclass
class Slice:
    index: int
    start: float  # seconds from the start of the load
    seconds: float
    loads: dict[str, LoadResult] = field(default_factory=dict)
    ruleset_ms: list[float] = field(default_factory=list)
    ruleset_errors: int = 0
    webhooks: float = 0.0  # asked, per second
    arrays: float = 0.0
    # --capacity: outbox backlogs plus consumer lags when the slice ended
    backlog: dict[str, int] = field(default_factory=dict)

    @property
    def events_asked(self) -> float:
        return self.webhooks + self.arrays * ARRAY

    @property
    def kept_up(self) -> bool:
        """Every request due was answered, and what was left to do when the slice ended is
        at most BACKLOG_SECONDS of its rate."""
        answered = all(r.kept_up for r in self.loads.values())
        return answered and sum(self.backlog.values()) <= BACKLOG_SECONDS * self.events_asked

    def p99(self, kind: str) -> float:
        if kind == "ruleset PUT":
            return pct(self.ruleset_ms, 0.99)
        return self.loads[kind].p99


@dataclass(frozen=True)
class RssSample:
    at: float  # seconds from the start of the load (negative: before it)
    mib: dict[str, float]


@dataclass
class Drain:
    """Seconds after the load stopped until each backlog read zero (None: not within
    DRAIN_LIMIT), and the backlog as first seen."""

    outbox: dict[str, float | None] = field(default_factory=dict)
    lag: dict[str, float | None] = field(default_factory=dict)
    initial: dict[str, int] = field(default_factory=dict)
    # (seconds after the stop, lag per group), about every LAG_TRACE_EVERY s: draining
    # slowly or stuck?
    trace: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    # per consumer service: its consumer counters when the load stopped and at the end
    work: dict[str, tuple[ConsumerWork, ConsumerWork]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsumerWork:
    """A service's consumer counters (its /metrics): events by outcome, batches, and the
    seconds spent applying them."""

    events: dict[str, float]
    batches: float
    seconds: float

    def since(self, before: ConsumerWork) -> ConsumerWork:
        outcomes = self.events.keys() | before.events.keys()
        return ConsumerWork(
            {o: self.events.get(o, 0) - before.events.get(o, 0) for o in outcomes},
            self.batches - before.batches,
            self.seconds - before.seconds,
        )


@dataclass
class SoakRun:
    minutes: float
    asked: dict[str, float]
    slices: list[Slice] = field(default_factory=list)
    rss: list[RssSample] = field(default_factory=list)
    drain: Drain = field(default_factory=Drain)
    stopped_early: str = ""
    drain_limit: float = DRAIN_LIMIT
    capacity: bool = False
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)


def slice_plan(minutes: float, slice_minutes: float = 5.0) -> list[float]:
    """The slices' lengths in seconds: ``slice_minutes`` each, or thirds of a shorter run
    (first, middle, last); a last partial slice is folded into the one before."""
    total = minutes * 60
    length = min(slice_minutes * 60, total / 3)
    count = max(1, int(total // length))
    plan = [length] * count
    plan[-1] += total - length * count
    return plan


def plan(args: argparse.Namespace) -> list[tuple[float, float, float]]:
    """(seconds, webhooks/s, arrays/s) per slice: the soak's fixed rates in ``slice_plan``'s
    slices, or with ``--capacity`` one step per total rate asked, split as WEBHOOK_SHARE."""
    if args.capacity:
        return [
            (args.step_minutes * 60, rate * WEBHOOK_SHARE, rate * (1 - WEBHOOK_SHARE) / ARRAY)
            for rate in args.capacity
        ]
    return [(s, args.webhooks, args.arrays) for s in slice_plan(args.minutes, args.slice_minutes)]


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def growth(samples: Sequence[RssSample], since: float) -> dict[str, tuple[float, float, float]]:
    """Per process: (RSS at the first sample at or after ``since``, at the last sample, the
    largest seen from ``since`` on), MiB."""
    kept = [s for s in samples if s.at >= since] or list(samples[-1:])
    names = kept[0].mib if kept else {}
    return {
        name: (kept[0].mib[name], kept[-1].mib[name], max(s.mib.get(name, 0.0) for s in kept))
        for name in names
    }


# -- the run ----------------------------------------------------------------------------


def serve_forecast(stack: Stack) -> Server:
    """``salesops serve forecast`` on its own database (bench/stack.py starts the others)."""
    port = free_port()
    env = {
        **stack.env,
        "SALESOPS_FORECAST_PORT": str(port),
        "SALESOPS_FORECAST_DATABASE": FORECAST_DATABASE,
        "SALESOPS_FORECAST_RUN_INTERVAL_SECONDS": "0",
    }
    log = stack.root / "forecast.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "salesops_cli.main", "serve", "forecast"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", "salesops serve forecast", None, log)
    stack.servers.append(server)
    _wait_ready(server.url, process, "/readyz")
    return server


async def _ruleset_changes(
    routing: str, models: list[dict[str, Any]], every: float, until: float, into: Slice
) -> None:
    async with httpx.AsyncClient(headers=API, timeout=60) as http:
        turn = into.index
        while time.monotonic() + every <= until:
            await asyncio.sleep(every)
            started = time.perf_counter()
            resp = await http.put(routing + "/v1/routing/ruleset", json=models[turn % 2])
            into.ruleset_ms.append((time.perf_counter() - started) * 1000)
            into.ruleset_errors += resp.status_code != 200
            turn += 1


async def _sampler(pids: dict[str, int], start: float, into: list[RssSample]) -> None:
    while True:
        into.append(RssSample(time.monotonic() - start, {n: rss_mib(p) for n, p in pids.items()}))
        await asyncio.sleep(SAMPLE_EVERY)


async def _outbox_backlogs(dsns: dict[str, str]) -> dict[str, int]:
    counts = {}
    for name, dsn in dsns.items():
        conn = await asyncpg.connect(dsn)
        try:
            unsent = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            counts[name] = int(await conn.fetchval(unsent))
            if name == "ingest":  # webhook deliveries not yet turned into events
                pending = "SELECT count(*) FROM deliveries WHERE processed_at IS NULL"
                counts[name] += int(await conn.fetchval(pending))
        finally:
            await conn.close()
    return counts


async def _group_lags(bootstrap: str) -> dict[str, int]:
    """Records on the broker that each consumer group has not committed yet, over the
    topics it has committed on. Read with a consumer of the group that never subscribes
    (so it never joins): the dev broker answers the consumer's OffsetFetch, not the admin
    client's."""
    lags = {}
    for group in GROUPS:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            topics = [t for t in await consumer.topics() if t.startswith("salesops.")]
            partitions = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
            committed = {tp: await consumer.committed(tp) for tp in partitions}
            used = {tp.topic for tp, offset in committed.items() if offset is not None}
            counted = [tp for tp in partitions if tp.topic in used]
            end = await consumer.end_offsets(counted) if counted else {}
            lags[group] = sum(max(0, end[tp] - (committed[tp] or 0)) for tp in counted)
        finally:
            await consumer.stop()
    return lags


async def _consumer_work(http: httpx.AsyncClient, url: str) -> ConsumerWork:
    text = (await http.get(url + "/metrics")).text
    events: dict[str, float] = {}
    batches = seconds = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_consumer_events_total"):
                outcome = sample.labels["outcome"]
                events[outcome] = events.get(outcome, 0) + sample.value
            elif sample.name.endswith("_consumer_processing_seconds_count"):
                batches += sample.value
            elif sample.name.endswith("_consumer_processing_seconds_sum"):
                seconds += sample.value
    return ConsumerWork(events, batches, seconds)


async def _drained(
    probe: Callable[[], Awaitable[dict[str, int]]],
    into: dict[str, float | None],
    start: float,
    limit: float,
    trace: list[tuple[float, dict[str, int]]] | None = None,
) -> dict[str, int]:
    """Poll ``probe`` until every count is zero (or ``limit``); the first counts seen.
    ``trace`` gets the counts about every LAG_TRACE_EVERY s."""
    first = await probe()
    pending = {name for name, count in first.items() if count}
    for name in set(first) - pending:
        into[name] = time.monotonic() - start
    traced = -LAG_TRACE_EVERY
    while pending and time.monotonic() - start < limit:
        counts = await probe()
        at = time.monotonic() - start
        if trace is not None and at - traced >= LAG_TRACE_EVERY:
            trace.append((at, counts))
            traced = at
        for name in list(pending):
            if counts[name] == 0:
                into[name] = time.monotonic() - start
                pending.discard(name)
        if pending:
            await asyncio.sleep(0.5)
    for name in pending:
        into[name] = None
    return first


async def run(args: argparse.Namespace) -> SoakRun:
    asked = {
        "webhooks": float(args.webhooks),
        "events": float(args.arrays),
        "reads": float(args.reads),
    }
    result = SoakRun(args.minutes, asked, capacity=bool(args.capacity))
    stack = Stack.start()
    try:
        ingest, routing, metrics = stack.ingest(), stack.routing(), stack.metrics()
        forecast = serve_forecast(stack)
        async with httpx.AsyncClient(headers=API, timeout=60) as http:
            rep_ids = await seed_reps(http, ingest.url, routing.url, within=120)
        models = rulesets(rep_ids)
        pids = {
            "ingest": ingest.pid,
            "routing": routing.pid,
            "metrics": metrics.pid,
            "forecast": forecast.pid,
            "PostgreSQL": stack.pg_pid,
            "broker": stack.broker_pid,
            "load generator": os.getpid(),
        }
        run_id = os.urandom(3).hex()
        webhooks = Post(ingest.url + "/webhooks/pipedrive", payloads.pipedrive_headers())
        events = Post(ingest.url + "/v1/events", API)
        reads = {
            "routing GET /v1/reps": get(routing.url + "/v1/reps"),
            "metrics GET /v1/kpis": get(metrics.url + "/v1/kpis?kpi=leads_assigned"),
            "forecast GET /v1/pipeline": get(forecast.url + "/v1/pipeline"),
        }
        read_urls = {
            "routing GET /v1/reps": routing.url,
            "metrics GET /v1/kpis": metrics.url,
            "forecast GET /v1/pipeline": forecast.url,
        }
        dsns = {
            "ingest": stack.dsn,
            "routing": database_dsn(stack.pg.url, "bench_routing"),
            "metrics": stack.metrics_dsn,
            "forecast": database_dsn(stack.pg.url, FORECAST_DATABASE),
        }
        start = time.monotonic()
        sampler = asyncio.create_task(_sampler(pids, start, result.rss))
        sent_webhooks = sent_arrays = 0
        try:
            offset = 0.0
            for index, (seconds, rate_webhooks, rate_arrays) in enumerate(plan(args)):
                part = Slice(index, offset, seconds, webhooks=rate_webhooks, arrays=rate_arrays)
                first_webhook, first_array = sent_webhooks, sent_arrays
                loads = {
                    "Pipedrive webhook": run_load(
                        webhooks.url,
                        webhooks.of(
                            lambda n, k=first_webhook: payloads.pipedrive_event(run_id, k + n)
                        ),
                        events_per_request=1,
                        concurrency=16,
                        seconds=seconds,
                        expect=(200, 202, 204),
                        rate=part.webhooks,
                    ),
                    "POST /v1/events": run_load(
                        events.url,
                        events.of(lambda n, k=first_array: events_array(run_id, k + n)),
                        events_per_request=ARRAY,
                        concurrency=16,
                        seconds=seconds,
                        rate=part.arrays,
                    ),
                    **{
                        kind: run_load(
                            read_urls[kind],
                            make,
                            events_per_request=0,
                            concurrency=4,
                            seconds=seconds,
                            expect=200,
                            rate=args.reads,
                        )
                        for kind, make in reads.items()
                    },
                }
                changes = _ruleset_changes(
                    routing.url, models, args.ruleset_every, time.monotonic() + seconds, part
                )
                done = await asyncio.gather(*loads.values(), changes)
                part.loads = dict(zip(loads, done[:-1], strict=True))
                sent_webhooks += part.loads["Pipedrive webhook"].scheduled
                sent_arrays += part.loads["POST /v1/events"].scheduled
                if args.capacity:
                    part.backlog = {
                        **{f"{n} outbox": c for n, c in (await _outbox_backlogs(dsns)).items()},
                        **{
                            f"{g} lag": c
                            for g, c in (await _group_lags(stack.broker.bootstrap)).items()
                        },
                    }
                result.slices.append(part)
                offset += seconds
                print(slice_line(part), file=sys.stderr, flush=True)
                if result.rss and result.rss[-1].mib["broker"] > BROKER_LIMIT_MIB:
                    result.stopped_early = "the broker's RSS passed 8 GiB"
                    break
            stopped = time.monotonic()
            consumers = {"ingest": ingest, "routing": routing, "metrics": metrics}
            consumers["forecast"] = forecast
            async with httpx.AsyncClient(timeout=60) as http:
                at_stop = {n: await _consumer_work(http, s.url) for n, s in consumers.items()}
                outbox, lag = await asyncio.gather(
                    _drained(
                        lambda: _outbox_backlogs(dsns), result.drain.outbox, stopped, args.drain
                    ),
                    _drained(
                        lambda: _group_lags(stack.broker.bootstrap),
                        result.drain.lag,
                        stopped,
                        args.drain,
                        result.drain.trace,
                    ),
                )
                for name, server in consumers.items():
                    end = await _consumer_work(http, server.url)
                    result.drain.work[name] = (at_stop[name], end)
            result.drain.initial = {**outbox, **lag}
            result.drain_limit = args.drain
            await asyncio.sleep(SAMPLE_EVERY)  # one more RSS sample, at rest
        finally:
            sampler.cancel()
        result.load_average = os.getloadavg()
        return result
    finally:
        stack.stop()


# -- the report -----------------------------------------------------------------------------


def slice_line(s: Slice) -> str:
    parts = [f"{k} p99 {r.p99:,.0f} ms ({r.errors} errors)" for k, r in s.loads.items()]
    return (
        f"soak: slice {s.index + 1} ({s.start / 60:.0f}-{(s.start + s.seconds) / 60:.0f} min): "
        + "; ".join(parts)
    )


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:,.0f}"


def _seconds(value: float | None, limit: float = DRAIN_LIMIT) -> str:
    return f"not within {limit:.0f} s" if value is None else f"{value:.1f} s"


def drain_details(d: Drain) -> list[str]:
    """How the lag went down after the stop, and what each consumer did meanwhile."""
    groups = list(d.lag)
    out = [
        "",
        "Consumer lag after the stop:",
        "",
        table(
            ("seconds after the stop", *groups),
            [[f"{at:.0f}", *(f"{lags.get(g, 0):,}" for g in groups)] for at, lags in d.trace],
        ),
        "",
        "Each service's consumer from the stop to the end of the drain (its /metrics):",
        "",
    ]
    rows = []
    for name, (before, after) in d.work.items():
        w = after.since(before)
        applied = w.events.get("applied", 0)
        per_batch = w.seconds / w.batches * 1000 if w.batches else float("nan")
        rows.append(
            [
                name,
                f"{applied:,.0f}",
                f"{w.events.get('duplicate', 0):,.0f}",
                f"{w.events.get('ignored', 0):,.0f}",
                f"{w.batches:,.0f}",
                _ms(per_batch),
                f"{w.seconds:,.1f}",
            ]
        )
    out.append(
        table(
            ("service", "applied", "duplicates", "ignored", "batches", "ms a batch", "busy s"),
            rows,
        )
    )
    return out


def capacity_report(r: SoakRun) -> str:
    """One row per step: what was asked and answered, and the work left when it ended."""
    kinds = list(r.slices[0].loads)
    rows = []
    for s in r.slices:
        accepted = sum(s.loads[k].events for k in kinds) / s.seconds
        rows.append(
            [
                f"{s.events_asked:g}",
                f"{accepted:,.0f}",
                *(_ms(s.loads[k].p99) for k in kinds),
                _ms(pct(s.ruleset_ms, 0.99)),
                f"{sum(s.backlog.values()):,}",
                max(s.backlog, key=lambda k: s.backlog[k]) if any(s.backlog.values()) else "–",
                "yes" if s.kept_up else "no",
            ]
        )
    kept = [s.events_asked for s in r.slices if s.kept_up]
    # The capacity is the rate below the first step that was not kept up.
    first_missed = next((i for i, s in enumerate(r.slices) if not s.kept_up), len(r.slices))
    capacity = r.slices[first_missed - 1].events_asked if first_missed else None
    out = [
        f"Capacity ramp: steps of {r.slices[0].seconds / 60:g} min on one stack (history "
        f"accumulates), events split {WEBHOOK_SHARE:.0%} webhooks / the rest arrays of {ARRAY}, "
        f"{r.asked['reads']:g} reads/s per service and the ruleset changes beside them; a step "
        f"is kept up when every request due was answered and at most {BACKLOG_SECONDS:g} s of "
        "its events were left in outboxes and consumer lags when it ended. Load average at the "
        "end " + ", ".join(f"{x:.1f}" for x in r.load_average),
        "",
        table(
            (
                "events/s asked",
                "accepted/s",
                *(f"{k} p99 ms" for k in kinds),
                "ruleset PUT p99 ms",
                "left at the end",
                "most left in",
                "kept up",
            ),
            rows,
        ),
        "",
        (
            f"Capacity: {capacity:g} events/s (the last step kept up before the first that was "
            f"not); half of it, for the soak: {capacity / 2:g} events/s = "
            f"--webhooks {capacity / 2 * WEBHOOK_SHARE:g} "
            f"--arrays {capacity / 2 * (1 - WEBHOOK_SHARE) / ARRAY:g}"
            if capacity
            else "Capacity: below the first step."
        ),
    ]
    if kept and capacity != max(kept):
        out.append(f"(a later step, {max(kept):g} events/s, was kept up again)")
    return "\n".join(out)


def report(r: SoakRun) -> str:
    if r.capacity:
        return capacity_report(r)
    first, last = r.slices[0], r.slices[-1]
    kinds = [*first.loads, "ruleset PUT"]
    rows = []
    for kind in kinds:
        row = [kind, _ms(first.p99(kind)), _ms(last.p99(kind))]
        if kind in first.loads:
            errors = sum(s.loads[kind].errors for s in r.slices)
            kept = all(s.loads[kind].kept_up for s in r.slices)
            answered = sum(s.loads[kind].requests for s in r.slices)
            row += [f"{answered:,}", str(errors), "yes" if kept else "no"]
        else:
            changes = sum(len(s.ruleset_ms) for s in r.slices)
            errors = sum(s.ruleset_errors for s in r.slices)
            row += [f"{changes:,}", str(errors), "–"]
        rows.append(row)
    out = [
        f"Soak: {r.minutes:g} minutes, {len(r.slices)} slices of "
        f"{first.seconds / 60:g} min; asked {r.asked['webhooks']:g} webhooks/s + "
        f"{r.asked['events']:g} arrays of {ARRAY}/s = "
        f"{r.asked['webhooks'] + r.asked['events'] * ARRAY:g} events/s, "
        f"{r.asked['reads']:g} reads/s per service; load average at the end "
        + ", ".join(f"{x:.1f}" for x in r.load_average),
        "",
        table(
            (
                "request",
                "p99 ms, first slice",
                "p99 ms, last slice",
                "answered",
                "errors",
                "every request due answered",
            ),
            rows,
        ),
    ]
    if r.stopped_early:
        out += ["", f"Stopped early: {r.stopped_early}."]
    since = first.seconds
    limit = r.drain_limit
    mem_rows = [
        [name, f"{a:,.0f}", f"{b:,.0f}", f"{peak:,.0f}", f"{b - a:+,.0f}"]
        for name, (a, b, peak) in growth(r.rss, since).items()
    ]
    out += [
        "",
        f"RSS (MiB), sampled every {SAMPLE_EVERY:g} s: from the end of the first slice to the "
        "end (at rest, after the drain):",
        "",
        table(("process", "after slice 1", "end", "peak", "growth"), mem_rows),
        "",
        f"After the load stopped (target: zero within {DRAIN_TARGET:g} s):",
        "",
        table(
            ("backlog", "when the load stopped", "zero after"),
            [
                [f"{name} outbox", f"{r.drain.initial.get(name, 0):,}", _seconds(t, limit)]
                for name, t in r.drain.outbox.items()
            ]
            + [
                [f"{name} lag", f"{r.drain.initial.get(name, 0):,}", _seconds(t, limit)]
                for name, t in r.drain.lag.items()
            ],
        ),
        *drain_details(r.drain),
    ]
    return "\n".join(out)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=20.0, help="how long the load runs (20)")
    p.add_argument("--slice-minutes", type=float, default=5.0, help="report slices (5)")
    p.add_argument("--webhooks", type=float, default=30.0, help="Pipedrive webhooks/s (30)")
    p.add_argument("--arrays", type=float, default=12.0, help=f"arrays of {ARRAY} events/s (12)")
    p.add_argument("--reads", type=float, default=5.0, help="GETs/s to each service (5)")
    p.add_argument("--ruleset-every", type=float, default=20.0, help="seconds (20)")
    p.add_argument(
        "--capacity",
        type=lambda text: [float(x) for x in text.split(",")],
        default=None,
        metavar="R1,R2,...",
        help="instead of the soak: a ramp of total event rates, one step each, and the highest "
        "rate the whole stack kept up with",
    )
    p.add_argument("--step-minutes", type=float, default=1.0, help="--capacity steps (1)")
    p.add_argument(
        "--drain",
        type=float,
        default=DRAIN_LIMIT,
        help=f"seconds to wait for the backlogs after the load ({DRAIN_LIMIT:g})",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    command = "make soak SOAK_ARGS=" + repr(" ".join(sys.argv[1:] if argv is None else argv))
    result = uvloop.run(run(args))
    print(f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(report(result))


if __name__ == "__main__":
    main()
