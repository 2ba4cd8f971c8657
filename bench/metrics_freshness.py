"""Issue 5's freshness: an event accepted by ingest (its ``POST /v1/events`` answered 202) to
the KPI visibly changed on ``/metrics`` and on ``GET /v1/kpis``, while ingest takes deal and
lead events at a fixed rate (``LOW_RATE``, which this 2-core machine sustains with metrics
beside it, then the target's ``RATE``); and how long a scrape and KPI requests take over a
database the size of a 500-rep organisation.

A stack of its own: embedded PostgreSQL with fsync on, the Tansu broker, ``salesops serve
ingest`` and ``salesops serve metrics`` (default settings: gauges over the last 30 days, a
snapshot taken again every 250 ms when anything changed, a scrape shows the newest one).

1. The reps are created through ingest (``rep.created``, so that the live events can name
   them by source id); a year of the organisation's history (bench/metrics_org.py: ruleset,
   accounts, deals, leads, assignments, touches...) is written straight into metrics'
   database through its projection code, as its consumer would.
2. Scrape and KPI requests are timed with nothing else running (bench/metrics_scrape.py).
3. A warm-up, then for each rate ``seconds`` of arrays of ``PER_REQUEST`` deal and lead
   events due at a fixed rate (bench/load.py's open loop: request i at start + i/rate), up
   to ``CONNECTIONS`` connections (each request changes only records created by earlier
   requests of its lane: ``LiveEvents``). Meanwhile a marker every ``MARKER_EVERY`` s, on a
   request of its own: a deal closed by a rep alone in a team of their own (the first won,
   every later one lost, so that after marker i the team's win rate is exactly 1/i). Each
   marker counts from its 202 until ``/metrics`` shows
   ``salesops_metrics_win_rate_ratio{team=...}`` ≤ 1/i and until ``GET
   /v1/kpis?kpi=win_rate&group_by=team&from=<first run's start>`` shows the team's
   denominator ≥ i, each polled by one poller for all pending markers (every
   ``SCRAPE_EVERY`` and ``REST_EVERY`` s: the probes' load does not grow when metrics falls
   behind); a reader of ``salesops.crm.v1`` sees when ingest published it. The polls' own
   latencies are the scrape and request times under load.

``python -m bench.metrics_freshness`` runs this alone (options for a smaller history,
another rate, longer runs).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import metrics_scrape
from bench.cpu import CpuShare, cpu_of
from bench.load import LoadResult, Post, run_load
from bench.metrics_org import SOURCES, STAGES, Org, Size, rep_source_id
from bench.readers import EndReader
from bench.report import errors, table, verdict
from bench.stack import PROFILE_ENV, TOKEN, Server, Stack
from salesops_common.events import CE_TYPE_PREFIX, CRM_TOPIC

RATE = 2_000.0  # events per second
LOW_RATE = 500.0  # events per second: metrics' own latency, where the machine keeps up
PER_REQUEST = 100
CONNECTIONS = 16
WARM_SECONDS = 10.0
LANES = 64
MARKER_EVERY = 0.25
SCRAPE_EVERY = 0.05
REST_EVERY = 0.1
GIVE_UP = 30.0  # s after its 202 a marker not seen counts as never
TARGET_P99_MS = 1000.0
TENANT = "bench-metrics"
METRICS_PROFILE_ENV = "SALESOPS_BENCH_METRICS_PROFILE"
FAMILY_READS = "salesops_metrics_kpi_family_reads_total"
API = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
_WON = (CE_TYPE_PREFIX + "deal.won").encode()
_LOST = (CE_TYPE_PREFIX + "deal.lost").encode()


# -- what is sent ------------------------------------------------------------------------------


def _event(type_name: str, key: str, at: datetime, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "type": type_name,
            "source": "api",
            "tenant": TENANT,
            "source_event_id": key,
            "occurred_at": at.isoformat(),
            "data": data,
        }
    )


class LiveEvents:
    """A CRM's stream: new deals moving through stages to won or lost, new leads and changes
    to them, owned by the organisation's reps (by source id).

    Request n belongs to lane n % ``LANES`` and changes only records created by its lane's
    earlier requests, which may still be in flight when ingest is behind (ingest makes a
    change wait for the request creating its record, as it must); a lane's requests are
    ``LANES`` requests apart, as a CRM seldom sends one record's changes close together."""

    def __init__(self, run: str, reps: int, seed: int) -> None:
        self.run, self.reps = run, reps
        self.rng = random.Random(seed)
        self.n = 0
        self.batches = 0
        # per lane: (batch, source id) of the deals and the leads it created, in batch order
        self._deals: list[list[tuple[int, str]]] = [[] for _ in range(LANES)]
        self._leads: list[list[tuple[int, str]]] = [[] for _ in range(LANES)]

    def batch(self, size: int, at: datetime) -> bytes:
        """``size`` events of the next request."""
        lane, self.batches = self.batches % LANES, self.batches + 1
        earlier = (self.batches - 2, chr(0x10FFFF))  # created by the lane's earlier requests
        self.deals, self.leads = self._deals[lane], self._leads[lane]
        known_deals = bisect_right(self.deals, earlier)
        known_leads = bisect_right(self.leads, earlier)
        events = [self._one(at, known_deals, known_leads) for _ in range(size)]
        return b"[" + b",".join(events) + b"]"

    def _one(self, at: datetime, known_deals: int, known_leads: int) -> bytes:
        rng, self.n = self.rng, self.n + 1
        key = f"{self.run}-{self.n}"
        draw = rng.random()
        if draw < 0.4 and known_deals > 20:
            deal = self.deals[rng.randrange(known_deals)][1]
            if draw < 0.25:
                return _event(
                    "deal.stage_changed", key, at, {"source_id": deal, "stage": rng.choice(STAGES)}
                )
            verb = "won" if draw < 0.31 else "lost"
            data = {"source_id": deal, "stage": verb.title(), "closed_at": at.isoformat()}
            return _event(f"deal.{verb}", key, at, data)
        if draw < 0.6 or known_leads <= 20:
            if draw < 0.5:
                return self._deal(key, at)
            return self._lead(key, at)
        lead = self.leads[rng.randrange(known_leads)][1]
        status = rng.choice(("working", "nurture", "qualified"))
        return _event("lead.updated", key, at, {"source_id": lead, "status": status})

    def _deal(self, key: str, at: datetime) -> bytes:
        self.deals.append((self.batches - 1, key))
        rng = self.rng
        data = {
            "source_id": key,
            "owner_source_id": rep_source_id(rng.randrange(self.reps)),
            "amount": str(rng.randrange(1_000, 200_000, 50)),
            "currency": "EUR" if rng.random() < 0.2 else "USD",
            "stage": STAGES[0],
            "created_at": at.isoformat(),
            "expected_close_date": (at + timedelta(days=rng.randint(20, 120))).date().isoformat(),
        }
        return _event("deal.created", key, at, data)

    def _lead(self, key: str, at: datetime) -> bytes:
        self.leads.append((self.batches - 1, key))
        rng = self.rng
        data = {
            "source_id": key,
            "email": f"{key}@{rng.choice(('acme', 'globex', 'initech'))}-{self.n % 997}.example",
            "first_name": "Lee",
            "last_name": f"Buyer{self.n}",
            "company": f"Company {self.n % 997}",
            "lead_source": rng.choice(SOURCES),
            "owner_source_id": rep_source_id(rng.randrange(self.reps)),
            "created_at": at.isoformat(),
        }
        return _event("lead.created", key, at, data)


def marker(run: str, i: int, team_rep: str, at: datetime) -> bytes:
    """Marker i: a deal closed by the probe rep; the first won, every later one lost."""
    verb = "won" if i == 1 else "lost"
    data = {
        "source_id": f"{run}-marker-{i}",
        "owner_source_id": team_rep,
        "stage": verb.title(),
        "amount": "1000",
        "currency": "USD",
        "closed_at": at.isoformat(),
    }
    return _event(f"deal.{verb}", f"{run}-marker-{i}", at, data)


# -- what is seen ------------------------------------------------------------------------------


@dataclass
class Marker:
    i: int
    sent: float = 0.0  # perf_counter when its request was sent
    accepted: float = math.nan  # when its 202 was read
    deal_id: str = ""
    published: float = math.nan  # when the topic reader saw it
    on_metrics: float = math.nan
    on_rest: float = math.nan


class MarkerReader(EndReader):
    """Reads ``salesops.crm.v1`` from its end, without a consumer group: when each marker's
    deal.won or deal.lost was published (seen by this reader)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, [CRM_TOPIC])
        self.seen: dict[str, float] = {}

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    ce_type = next((v for k, v in r.headers if k == "ce_type"), b"")
                    if ce_type in (_WON, _LOST) and r.key is not None:
                        self.seen.setdefault(r.key.decode(), now)


@dataclass
class Polls:
    """The probes' own requests: their latencies are the scrape and request times under
    load."""

    scrape_ms: list[float] = field(default_factory=list)
    rest_ms: list[float] = field(default_factory=list)


class Probes:
    """One poller of ``/metrics`` and one of ``GET /v1/kpis`` for every marker still pending,
    so that the probes' own load stays the same however far behind metrics falls."""

    def __init__(self, http: httpx.AsyncClient, *, team: str, since: str) -> None:
        self.http, self.team, self.since = http, team, since
        self.pending_metrics: list[Marker] = []
        self.pending_rest: list[Marker] = []
        self.polls = Polls()
        self.open = True

    def add(self, m: Marker) -> None:
        self.pending_metrics.append(m)
        self.pending_rest.append(m)

    async def run(self) -> None:
        await asyncio.gather(self._scrapes(), self._requests())

    def _settle(self, pending: list[Marker], seen: int, at: float, attr: str) -> None:
        """Markers 1..seen are visible as of ``at``; give up on the ones too long pending."""
        for m in list(pending):
            if m.i <= seen:
                setattr(m, attr, at)
                pending.remove(m)
            elif at - m.accepted > GIVE_UP:
                pending.remove(m)

    async def _scrapes(self) -> None:
        series = f'salesops_metrics_win_rate_ratio{{team="{self.team}"}} '
        while self.open or self.pending_metrics:
            started = time.perf_counter()
            if self.pending_metrics:
                text = (await self.http.get("/metrics")).text
                done = time.perf_counter()
                self.polls.scrape_ms.append((done - started) * 1000)
                at = text.find(series)
                # after marker i the team's win rate is 1/i: the markers seen are round(1/value)
                value = float(text[at + len(series) : text.index("\n", at)]) if at >= 0 else 0
                seen = round(1 / value) if value > 0 else 0
                self._settle(self.pending_metrics, seen, done, "on_metrics")
            await asyncio.sleep(max(0.0, SCRAPE_EVERY - (time.perf_counter() - started)))

    async def _requests(self) -> None:
        params = {"kpi": "win_rate", "group_by": "team", "from": self.since}
        while self.open or self.pending_rest:
            started = time.perf_counter()
            if self.pending_rest:
                found = (await self.http.get("/v1/kpis", params=params)).json()
                done = time.perf_counter()
                self.polls.rest_ms.append((done - started) * 1000)
                rows = [v for v in found.get("values", []) if v["group"].get("team") == self.team]
                seen = int(rows[0]["denominator"]) if rows else 0
                self._settle(self.pending_rest, seen, done, "on_rest")
            await asyncio.sleep(max(0.0, REST_EVERY - (time.perf_counter() - started)))


# -- the run -----------------------------------------------------------------------------------


@dataclass
class LiveRun:
    """``seconds`` of events at ``rate``, with the markers sent meanwhile."""

    rate: float
    seconds: float
    load: LoadResult
    markers: list[Marker]
    polls: Polls
    cpu: CpuShare
    wall: float
    achieved: float  # events/s accepted, from the first request due to the last answer
    plumbing: dict[str, float]

    def latencies(self, end: str, start: str = "accepted") -> list[float]:
        out = []
        for m in self.markers:
            began, ended = getattr(m, start), getattr(m, end)
            if not math.isnan(began):
                out.append((ended - began) * 1000 if not math.isnan(ended) else math.inf)
        return sorted(out)

    @property
    def worst_p99(self) -> float:
        return max(_pct(self.latencies("on_metrics"), 0.99), _pct(self.latencies("on_rest"), 0.99))

    @property
    def sustained(self) -> bool:
        return self.load.kept_up and self.achieved >= 0.95 * self.rate

    @property
    def met(self) -> bool:
        return self.rate >= RATE and self.sustained and self.worst_p99 <= TARGET_P99_MS


@dataclass
class FreshnessResults:
    size: Size
    idle: list[metrics_scrape.Timing]
    filled: Counter[str]
    fill_seconds: float
    runs: list[LiveRun]


async def _post_ok(http: httpx.AsyncClient, url: str, events: list[dict[str, Any]]) -> list[str]:
    ids = []
    for first in range(0, len(events), 500):
        r = await http.post(url, content=orjson.dumps(events[first : first + 500]))
        if r.status_code != 202:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:500]}")
        ids += [result["entity_id"] for result in r.json()["results"]]
    return ids


async def _known_reps(http: httpx.AsyncClient, metrics: Server, count: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        found = (await http.get(metrics.url + "/v1/kpis")).json()["events_by_type"]
        if found.get("rep.created", 0) >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"metrics applied {found.get('rep.created', 0)} of {count} reps")
        await asyncio.sleep(0.5)


def _plumbing(text: str) -> dict[str, float]:
    wanted = (
        "salesops_metrics_kpi_snapshot_seconds_sum",
        "salesops_metrics_kpi_snapshot_seconds_count",
        "salesops_metrics_consumer_processing_seconds_sum",
        "salesops_metrics_consumer_processing_seconds_count",
        "salesops_metrics_pipeline_lag_seconds_sum",
        "salesops_metrics_pipeline_lag_seconds_count",
    )
    out: dict[str, float] = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in out:
            out[name] += float(line.rpartition(" ")[2])
        elif name == FAMILY_READS:  # one series per family of KPIs
            family = line.partition('family="')[2].partition('"')[0]
            out[f"{FAMILY_READS}:{family}"] = float(line.rpartition(" ")[2])
    return out


async def run(
    seconds: float,
    *,
    size: Size | None = None,
    rates: Sequence[float] = (LOW_RATE, RATE),
    repeats: int = metrics_scrape.REPEATS,
) -> FreshnessResults:
    """See the module docstring: one stack, the history, the requests at rest, then a run at
    each of ``rates`` in turn."""
    size = size or Size()
    stack = Stack.start()
    reader: MarkerReader | None = None
    try:
        ingest, metrics = stack.ingest(), _metrics_server(stack)
        run_id = uuid.uuid4().hex[:8]
        team_rep = f"probe-{run_id}"
        org = Org(size, datetime.now(UTC))
        async with httpx.AsyncClient(headers=API, timeout=120) as http:
            reps = await _post_ok(http, ingest.url + "/v1/events", org.rep_api_events(TENANT))
            await _post_ok(http, ingest.url + "/v1/events", [_probe_rep(team_rep)])
            org.use_reps([uuid.UUID(r) for r in reps])
            started = time.perf_counter()
            filled = await metrics_scrape.fill(
                stack.metrics_dsn, [*org.roster(reps=False), *org.history()]
            )
            fill_seconds = time.perf_counter() - started
            await _known_reps(http, metrics, size.reps + 1)
        idle = await metrics_scrape.measure(metrics, repeats)
        reader = MarkerReader(stack.broker.bootstrap)
        await reader.start()
        pids = {
            "ingest": ingest.pid,
            "metrics": metrics.pid,
            "PostgreSQL": stack.pg_pid,
            "broker": stack.broker_pid,
            "load generator + probes": os.getpid(),
        }
        live = LiveEvents(run_id, size.reps, seed=4)
        await _send(ingest, live, min(rates), WARM_SECONDS)
        since = datetime.now(UTC).replace(microsecond=0).isoformat()
        markers: list[Marker] = []  # numbered across the runs: after marker i, 1/i
        runs = []
        for rate in rates:
            metrics.profile_mark(None)  # profiling only: one profile per run
            runs.append(
                await _measure(
                    ingest,
                    metrics,
                    reader,
                    live,
                    pids,
                    markers,
                    rate=rate,
                    seconds=seconds,
                    team=team_rep,
                    run_id=run_id,
                    since=since,
                )  # fmt: skip
            )
            metrics.profile_mark(f"metrics-{rate:.0f}")
        return FreshnessResults(size, idle, filled, fill_seconds, runs)
    finally:
        if reader is not None:
            await reader.stop()
        stack.stop()


def _metrics_server(stack: Stack) -> Server:
    """``SALESOPS_BENCH_METRICS_PROFILE=DIR``: metrics under bench/profiled.py's CPU sampler,
    ``metrics-<rate>.txt`` in DIR for each run (``python -m bench.profiled --summary FILE``)."""
    profile = os.environ.get(METRICS_PROFILE_ENV)
    if not profile:
        return stack.metrics()
    Path(profile).mkdir(parents=True, exist_ok=True)
    return stack.metrics(env={PROFILE_ENV: profile}, module="bench.profiled")


def _probe_rep(source_id: str) -> dict[str, Any]:
    """The rep who closes the markers, alone in a team named after them."""
    return {
        "type": "rep.created",
        "source": "api",
        "tenant": TENANT,
        "source_event_id": source_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": {"source_id": source_id, "name": "Probe", "active": True, "team": source_id},
    }


@dataclass(frozen=True)
class Sent:
    load: LoadResult
    accepted_per_second: float  # events answered 202, from the first request due to the last


async def _send(ingest: Server, events: LiveEvents, rate: float, seconds: float) -> Sent:
    """``seconds`` of arrays at ``rate`` events/s; bodies built before the clock starts."""
    requests = math.ceil(seconds * rate / PER_REQUEST)
    start = datetime.now(UTC) + timedelta(seconds=1)
    bodies = [
        events.batch(PER_REQUEST, start + timedelta(seconds=n * PER_REQUEST / rate))
        for n in range(requests)
    ]
    post = Post(ingest.url + "/v1/events", API)
    accepted, last = 0, 0.0

    def answered(n: int, status: int, body: bytes, at: float) -> None:
        nonlocal accepted, last
        if status == 202:
            accepted, last = accepted + PER_REQUEST, at

    began = time.perf_counter()
    load = await run_load(
        post.url,
        lambda n: post(bodies[n]),
        events_per_request=PER_REQUEST,
        concurrency=CONNECTIONS,
        seconds=seconds,
        rate=rate / PER_REQUEST,
        limit=len(bodies),
        on_answer=answered,
    )
    return Sent(load, accepted / max(1e-9, last - began))


async def _measure(
    ingest: Server,
    metrics: Server,
    reader: MarkerReader,
    live: LiveEvents,
    pids: dict[str, int],
    markers: list[Marker],
    *,
    rate: float,
    seconds: float,
    team: str,
    run_id: str,
    since: str,
) -> LiveRun:
    mine: list[Marker] = []
    async with (
        httpx.AsyncClient(base_url=metrics.url, headers=API, timeout=60) as probe,
        httpx.AsyncClient(headers=API, timeout=60) as http,
    ):
        before = _plumbing((await probe.get("/metrics")).text)
        probes = Probes(probe, team=team, since=since)

        async def mark() -> None:
            await asyncio.sleep(1.0)
            while time.perf_counter() < stop_marking:
                m = Marker(len(markers) + 1, sent=time.perf_counter())
                markers.append(m)
                mine.append(m)
                body = marker(run_id, m.i, team, datetime.now(UTC))
                r = await http.post(ingest.url + "/v1/events", content=body)
                m.accepted = time.perf_counter()
                if r.status_code != 202:
                    raise RuntimeError(f"marker {m.i}: {r.status_code} {r.text[:300]}")
                m.deal_id = r.json()["results"][0]["entity_id"]
                probes.add(m)
                await asyncio.sleep(max(0.0, m.sent + MARKER_EVERY - time.perf_counter()))

        with cpu_of(pids) as cpu:
            began = time.perf_counter()
            stop_marking = began + seconds - 1.0
            marking = asyncio.create_task(mark())
            polling = asyncio.create_task(probes.run())
            sent = await _send(ingest, live, rate, seconds)
            await marking
            probes.open = False
            await polling
            wall = time.perf_counter() - began
        after = _plumbing((await probe.get("/metrics")).text)
    for m in mine:
        m.published = reader.seen.get(m.deal_id, math.nan)
    return LiveRun(
        rate, seconds, sent.load, mine, probes.polls, cpu, wall, sent.accepted_per_second,
        {k: after[k] - before.get(k, 0.0) for k in after},
    )  # fmt: skip


# -- the report --------------------------------------------------------------------------------


def _pct(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else "–" if math.isnan(value) else f"{value:,.1f}"


HEADER = ("latency", "markers", "p50 ms", "p95 ms", "p99 ms", "max ms", "not seen")


def _row(name: str, lat: Sequence[float]) -> list[str]:
    return [
        name,
        f"{len(lat):,}",
        *(_ms(_pct(lat, q)) for q in (0.5, 0.95, 0.99)),
        _ms(lat[-1]) if lat else "–",
        str(sum(math.isinf(x) for x in lat)),
    ]


def _timing_row(name: str, ms: list[float]) -> list[str]:
    ordered = sorted(ms)
    return [name, f"{len(ms):,}", *(_ms(_pct(ordered, q)) for q in (0.5, 0.99)), _ms(ordered[-1])]


def report(r: FreshnessResults) -> str:
    size = r.size
    kinds = ", ".join(f"{n:,} {t}" for t, n in r.filled.most_common())
    idle_scrape = r.idle[0]
    lines = [
        f"`salesops serve ingest` and `salesops serve metrics` (default settings), PostgreSQL "
        f"with fsync on, the Tansu broker; {size.reps} reps created through ingest, then a "
        f"history for them ({size.describe()}) written into metrics' database through its "
        "projection code "
        f"({sum(r.filled.values()):,} events in {r.fill_seconds:.0f} s: {kinds}).",
        "",
        "#### Scrape and KPI requests, nothing else running",
        "",
        table(metrics_scrape.HEADER, [t.row() for t in r.idle]),
        "",
        "Each request once unmeasured, then timed one at a time from the bench's process.",
    ]
    for run_ in r.runs:
        lines += ["", f"#### {run_.seconds:g} s of deal and lead events at {run_.rate:,.0f} "
                  "events/s", "", _run_report(run_)]  # fmt: skip
    target = next((x for x in r.runs if x.rate >= RATE), r.runs[-1])
    lines += [
        "",
        f"Freshness p99 at {target.rate:,.0f} events/s asked: `/metrics` "
        f"**{_ms(_pct(target.latencies('on_metrics'), 0.99))} ms**, `GET /v1/kpis` "
        f"**{_ms(_pct(target.latencies('on_rest'), 0.99))} ms**, with {target.achieved:,.0f} "
        f"events/s accepted (target p99 ≤ {TARGET_P99_MS:,.0f} ms while ingest takes "
        f"{RATE:,.0f} events/s: {verdict(target.met)}"
        f"{'' if target.sustained else '; the rate was not sustained'}). Scrape with "
        f"{size.reps} reps and {size.territories} territories, nothing else running: median "
        f"**{idle_scrape.median:,.1f} ms** (target under {metrics_scrape.TARGET_SCRAPE_MS:g} ms:"
        f" {verdict(idle_scrape.median < metrics_scrape.TARGET_SCRAPE_MS)}).",
    ]
    return "\n".join(lines)


def _run_report(r: LiveRun) -> str:
    load, p = r.load, r.plumbing
    lat = [
        _row("**accepted → changed on `/metrics`**", r.latencies("on_metrics")),
        _row("**accepted → changed on `GET /v1/kpis`**", r.latencies("on_rest")),
        _row("accepted → published on `salesops.crm.v1` (ingest)", r.latencies("published")),
        _row(
            "published → changed on `/metrics` (metrics: consume, apply, snapshot, poll)",
            r.latencies("on_metrics", "published"),
        ),
        _row(
            "published → changed on `GET /v1/kpis` (metrics: consume, apply, poll)",
            r.latencies("on_rest", "published"),
        ),
    ]
    http_header = (
        "`POST /v1/events`", "events/s asked", "events/s accepted*", "requests due",
        "answered 202", "p50 ms", "p99 ms", "max wait for a connection ms", "errors",
    )  # fmt: skip
    http_row = [
        f"arrays of {PER_REQUEST}", f"{r.rate:,.0f}", f"{r.achieved:,.0f}",
        f"{load.scheduled:,}", f"{load.requests:,}", f"{load.p50:,.1f}", f"{load.p99:,.1f}",
        f"{load.max_lag * 1000:,.0f}", errors(load),
    ]  # fmt: skip
    return "\n".join(
        [
            f"Arrays of {PER_REQUEST} events (deals created, moved through stages, won and "
            "lost; leads created and updated; every rep's by source id) due at a fixed "
            f"{r.rate / PER_REQUEST:g} requests/s, up to {CONNECTIONS} connections; a marker "
            f"every {MARKER_EVERY * 1000:g} ms on a request of its own (a deal closed by a rep "
            "alone in their team: after marker i the team's win rate is exactly 1/i); "
            f"`/metrics` polled every {SCRAPE_EVERY * 1000:.0f} ms and `GET /v1/kpis?kpi="
            f"win_rate&group_by=team&from=<first run's start>` every {REST_EVERY * 1000:.0f} "
            "ms while a marker is pending; a reader of `salesops.crm.v1` (no consumer group) "
            f"sees each marker published. A marker counts from its 202; not seen within "
            f"{GIVE_UP:g} s: never (∞).",
            "",
            table(HEADER, lat),
            "",
            table(http_header, [http_row]),
            "",
            "*From the first request due to the last answer read; the HTTP latencies count "
            "from the moment each request was due.",
            "",
            table(
                ("under load", "requests", "p50 ms", "p99 ms", "max ms"),
                [
                    _timing_row("`GET /metrics` (the probes' polls)", r.polls.scrape_ms),
                    _timing_row(
                        "`GET /v1/kpis?kpi=win_rate&group_by=team&from=…`", r.polls.rest_ms
                    ),
                ],
            ),
            "",
            f"- {r.cpu.line(r.wall)} over {r.wall:.1f} s",
            f"- metrics: {_plumbing_line(p)}",
        ]
    )


def _plumbing_line(p: dict[str, float]) -> str:
    parts = []
    if snapshots := p["salesops_metrics_kpi_snapshot_seconds_count"]:
        mean = p["salesops_metrics_kpi_snapshot_seconds_sum"] / snapshots * 1000
        parts.append(f"{snapshots:,.0f} snapshots for `/metrics`, {mean:,.0f} ms each on average")
    if batches := p["salesops_metrics_consumer_processing_seconds_count"]:
        mean = p["salesops_metrics_consumer_processing_seconds_sum"] / batches * 1000
        parts.append(f"its consumer applied {batches:,.0f} batches, {mean:,.0f} ms each")
    if lagged := p["salesops_metrics_pipeline_lag_seconds_count"]:
        mean = p["salesops_metrics_pipeline_lag_seconds_sum"] / lagged
        parts.append(f"published → applied {mean:.2f} s on average")
    reads = {k.partition(":")[2]: n for k, n in p.items() if k.startswith(FAMILY_READS + ":") and n}
    if reads:
        each = ", ".join(f"{f} {n:,.0f}" for f, n in sorted(reads.items(), key=lambda x: -x[1]))
        parts.append(f"families read again for them: {each}")
    return "; ".join(parts) or "nothing"


def main() -> None:
    """``python -m bench.metrics_freshness``: this measurement alone."""
    import argparse

    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.metrics_freshness", description=__doc__)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rate", type=float, action="append", help="events/s (500 then 2000)")
    p.add_argument("--deals", type=int, default=Size.deals, help="deals in the year of history")
    p.add_argument("--leads", type=int, default=Size.leads, help="leads in the year of history")
    p.add_argument("--repeats", type=int, default=metrics_scrape.REPEATS)
    args = p.parse_args()
    size = Size(deals=args.deals, leads=args.leads)
    rates = args.rate or (LOW_RATE, RATE)
    results = uvloop.run(run(args.seconds, size=size, rates=rates, repeats=args.repeats))
    print(report(results))


if __name__ == "__main__":
    main()
