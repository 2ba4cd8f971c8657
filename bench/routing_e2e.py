"""End to end through the running services: ``lead.created`` accepted by ingest
(``POST /v1/events`` answered 202) to ``lead.assigned`` on ``salesops.routing.v1``, at a
fixed rate, with the ingest -> ``salesops.crm.v1`` latency alone as the baseline.

Its own stack (embedded PostgreSQL with fsync on, the Tansu broker, ``salesops serve
ingest`` and ``salesops serve routing``), started before the ingest benchmarks' and stopped
after, so that neither run disturbs the other:

1. ``REPS`` reps are posted to ingest as ``rep.created`` events and awaited in routing's
   roster; a ruleset of ``TERRITORIES`` territories and ``RULES`` rules from
   :func:`bench.routing_decision.generate_ruleset` is imported (``PUT /v1/routing/ruleset``)
   with those reps, named by e-mail, as the members.
2. A reader on both topics (no consumer group, every partition, from the end) is seated
   before any lead is sent.
3. A warm-up, then ``seconds`` of ``lead.created`` events, ``CRM_BATCH`` or one per
   request (``make bench`` runs both), due at a fixed rate (``RATE``, bench/load.py's open
   loop: request i at start + i/rate). A lead counts
   from the moment its 202 was read; the answer carries the canonical lead id ingest
   minted, which ``lead.created`` and ``lead.assigned`` name. Then, once routing has caught
   up, ``seconds`` more at ``LOW_RATE``: routing's latency when it is not behind.
4. Routing is stopped and ``RATE`` runs again: ingest -> ``salesops.crm.v1`` with nothing
   else at work (the baseline).

Each record's timestamp is set by the outbox relay that published it, so the latency also
splits into ingest's relay, routing (fetch, decide, commit, relay) and the broker to the
reader; the CPU time each process used per lead is reported too (ingest, routing,
PostgreSQL, broker; it moves with the load as well: a busy machine makes bigger batches).
``python -m bench.routing_e2e`` runs this measurement alone, with options for diagnosis
(another rate, arrays, routing under bench/profiled.py, bench/sql_timing.py or
bench/consumer_options.py, ``--workers``).

Every lead is unique (e-mail, name, domain mostly), so ingest's duplicate detection merges
none; its routing fields come from :func:`bench.routing_decision.lead_values`.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.cpu import CpuShare, cpu_of
from bench.load import LoadResult, Post, run_load
from bench.readers import EndReader
from bench.report import errors, table, verdict
from bench.routing_decision import generate_ruleset, lead_values
from bench.stack import TOKEN, Server, Stack
from salesops_common.events import CE_TYPE_PREFIX, CRM_TOPIC, ROUTING_TOPIC
from salesops_routing.domain.ruleset import Member, Ruleset

RATE = 200.0  # leads per second
CONNECTIONS = 64
REPS = 100
TERRITORIES = 200
RULES = 1000
TENANT = "bench-routing"
TARGET_P99_MS = 100.0
WARM_SECONDS = 3.0
LOW_RATE = 20.0  # leads per second: routing's own latency, when it keeps up
# Leads per request as CRMs push them: HubSpot webhooks carry up to 100 events, Salesforce
# Outbound Messages up to 100 notifications; 10 is a modest burst. One per request measures
# ingest's synchronous REST path (`POST /v1/events` answers with the canonical ids).
CRM_BATCH = 10
API = {"Authorization": f"Bearer {TOKEN}"}
_CREATED = (CE_TYPE_PREFIX + "lead.created").encode()
_ASSIGNED = (CE_TYPE_PREFIX + "lead.assigned").encode()


# -- what is sent ---------------------------------------------------------------------------


def _name(rng: random.Random) -> str:
    return rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase, k=9))


def lead_bodies(run: str, count: int, seed: int) -> list[bytes]:
    """``count`` single ``lead.created`` events, built before the clock starts."""
    rng = random.Random(seed)
    bodies = []
    for n, values in enumerate(lead_values(count, seed)):
        first, last = _name(rng), _name(rng)
        domain = values["domain"]
        data: dict[str, Any] = {
            "source_id": f"{run}-{n}",
            "email": f"{first.lower()}.{last.lower()}@{domain}",
            "first_name": first,
            "last_name": last,
            "company": f"{last} {rng.choice(('Inc', 'GmbH', 'Ltd', 'SA', 'BV'))}",
            "domain": domain,
            "lead_source": values["lead_source"],
            "country": values["country"],
            "region": values["region"],
            "postal_code": values["postal_code"],
            "employees": values["employees"],
            "annual_revenue": str(values["annual_revenue"]),
        }
        if values["industry"] is not None:
            data["industry"] = values["industry"]
        event = {
            "type": "lead.created",
            "source": "api",
            "tenant": TENANT,
            "source_event_id": f"{run}-{n}",
            "occurred_at": "2026-11-28T10:00:00+00:00",
            "data": data,
        }
        bodies.append(orjson.dumps(event))
    return bodies


def rep_email(n: int) -> str:
    return f"rep{n:03d}@bench-sales.example"


def rep_events() -> list[dict[str, Any]]:
    return [
        {
            "type": "rep.created",
            "source": "api",
            "tenant": TENANT,
            "source_event_id": f"rep-{n}",
            "occurred_at": "2026-11-01T09:00:00+00:00",
            "data": {
                "source_id": f"rep-{n}",
                "email": rep_email(n),
                "name": f"Rep {n}",
                "active": True,
                "role": "rep",
            },
        }
        for n in range(REPS)
    ]


def ruleset_with_reps() -> Ruleset:
    """The generated model with its members renamed to the seeded reps, by e-mail."""
    generated = generate_ruleset(TERRITORIES, RULES)
    emails: dict[Any, str] = {}
    territories = []
    for territory in generated.territories:
        members = []
        for m in territory.members:
            if m.rep_id not in emails:
                emails[m.rep_id] = rep_email(len(emails) % REPS)
            members.append(Member(email=emails[m.rep_id], weight=m.weight))
        territories.append(territory.model_copy(update={"members": members}))
    return generated.model_copy(update={"territories": territories})


# -- what is seen ---------------------------------------------------------------------------


@dataclass
class Seen:
    """When the reader saw each lead's events (perf_counter), and when the broker's records
    were stamped by their producer, the services' outbox relays (perf_counter scale)."""

    created: dict[str, float] = field(default_factory=dict)
    created_stamp: dict[str, float] = field(default_factory=dict)
    assigned: dict[str, float] = field(default_factory=dict)
    assigned_stamp: dict[str, float] = field(default_factory=dict)
    strategy: dict[str, str] = field(default_factory=dict)


class TopicReader(EndReader):
    """Reads ``salesops.crm.v1`` and ``salesops.routing.v1`` from their end, every
    partition, without a consumer group; stamps each record when ``getmany`` returns it."""

    def __init__(self, bootstrap: str, *, fetch_max_wait_ms: int = 5) -> None:
        super().__init__(bootstrap, [CRM_TOPIC, ROUTING_TOPIC], fetch_max_wait_ms=fetch_max_wait_ms)
        self.seen = Seen()
        # perf_counter = time.time() - offset (record timestamps are wall-clock ms)
        self._offset = time.time() - time.perf_counter()

    async def _read(self) -> None:
        seen, offset = self.seen, self._offset
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    ce_type = next((v for k, v in r.headers if k == "ce_type"), b"")
                    if ce_type == _CREATED:
                        lead = orjson.loads(r.value or b"{}")["id"]
                        seen.created.setdefault(lead, now)
                        seen.created_stamp.setdefault(lead, r.timestamp / 1000 - offset)
                    elif ce_type == _ASSIGNED:
                        data = orjson.loads(r.value or b"{}")
                        lead = data["lead_id"]
                        seen.assigned.setdefault(lead, now)
                        seen.assigned_stamp.setdefault(lead, r.timestamp / 1000 - offset)
                        seen.strategy.setdefault(lead, str(data.get("strategy")))


# -- one run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How leads are sent: ``rate`` leads/s, ``per_request`` leads in each request (1: one
    event per ``POST /v1/events``; more: a JSON array, as a CRM's webhook delivers them)."""

    rate: float = RATE
    per_request: int = 1
    connections: int = CONNECTIONS

    def describe(self) -> str:
        what = (
            "one event per request"
            if self.per_request == 1
            else (f"arrays of {self.per_request} events")
        )
        return f"{self.rate:g} leads/s, {what}"


@dataclass
class Run:
    how: Load
    load: LoadResult
    accepted: dict[str, float]  # lead id -> perf_counter when its 202 was read
    statuses: Counter[str]  # per event: accepted, merged, duplicate, ...
    seen: Seen
    achieved: float  # leads accepted per second, first request due to last answer read
    cpu: CpuShare | None = None
    cpu_wall: float = 0.0  # s over which the CPU was measured (sending and draining)
    drained_in: float = 0.0  # s after the last answer until everything was seen (or gave up)
    consumer: ConsumerStats | None = None  # routing's, when it ran
    # PostgreSQL transactions committed per lead accepted, per database (pg_stat_database)
    commits: dict[str, float] = field(default_factory=dict)

    def end_to_end(self) -> list[float]:
        return self.latencies(self.accepted, self.seen.assigned)

    def summary(self) -> str:
        """Leads assigned, CPU shares and routing's consumer, in a line."""
        parts = []
        if self.consumer is not None:
            assigned = [lead for lead in self.accepted if lead in self.seen.assigned]
            strategies = Counter(self.seen.strategy.get(lead) for lead in assigned)
            parts.append(
                f"{len(assigned):,} of {len(self.accepted):,} leads accepted were assigned ("
                + ", ".join(f"{n:,} {k}" for k, n in strategies.most_common())
                + f"), the last {self.drained_in:.1f} s after the last answer"
            )
        if self.cpu is not None:
            parts.append(f"{self.cpu.line(self.cpu_wall)} over {self.cpu_wall:.1f} s")
        if self.consumer is not None:
            parts.append(self.consumer.line(self.cpu_wall))
        if self.commits:
            parts.append(
                "PostgreSQL commits a lead: "
                + ", ".join(f"{db} {n:.2f}" for db, n in sorted(self.commits.items()))
            )
        return "; ".join(parts)

    def latencies(self, start: dict[str, float], end: dict[str, float]) -> list[float]:
        """ms from ``start`` to ``end`` of every lead accepted; inf when ``end`` never came."""
        return sorted(
            (end[lead] - t) * 1000 if lead in end else math.inf
            for lead in self.accepted
            if (t := start.get(lead)) is not None
        )

    def missing(self, end: dict[str, float]) -> int:
        return sum(lead not in end for lead in self.accepted)


async def send(
    ingest: Server,
    reader: TopicReader,
    *,
    run: str,
    seconds: float,
    seed: int,
    until: str,
    drain_within: float,
    how: Load = Load(),
    pids: dict[str, int] | None = None,
) -> Run:
    """``seconds`` of leads sent as ``how`` says; then wait until every accepted lead's
    ``until`` (``created`` or ``assigned``) was seen, at most ``drain_within`` s."""
    k = how.per_request
    events = lead_bodies(run, math.ceil(seconds * how.rate / k) * k, seed)
    if k == 1:
        bodies = events
    else:
        bodies = [b"[" + b",".join(events[i : i + k]) + b"]" for i in range(0, len(events), k)]
    post = Post(ingest.url + "/v1/events", {**API, "Content-Type": "application/json"})
    accepted: dict[str, float] = {}
    statuses: Counter[str] = Counter()
    last = 0.0

    def answered(n: int, status: int, body: bytes, at: float) -> None:
        nonlocal last
        if status != 202:
            return
        last = at
        for result in orjson.loads(body)["results"]:
            statuses[result["status"]] += 1
            if result["status"] == "accepted":
                accepted[result["entity_id"]] = at

    target: dict[str, float] = getattr(reader.seen, until)
    with cpu_of(pids or {}) as cpu:
        started = time.perf_counter()
        load = await run_load(
            post.url,
            lambda n: post(bodies[n]),
            events_per_request=k,
            concurrency=how.connections,
            seconds=seconds,
            rate=how.rate / k,
            limit=len(bodies),
            on_answer=answered,
        )
        done = time.perf_counter()
        while time.perf_counter() < done + drain_within:
            if all(lead in target for lead in accepted):
                break
            await asyncio.sleep(0.02)
        drained = time.perf_counter()
    return Run(
        how,
        load,
        accepted,
        statuses,
        reader.seen,
        achieved=len(accepted) / max(1e-9, last - started),
        cpu=cpu if pids else None,
        cpu_wall=drained - started,
        drained_in=drained - done,
    )


async def _commits(stack: Stack) -> dict[str, int]:
    """Transactions committed so far, per database. Backends report theirs at most once a
    second: wait that long first, so that what the leads caused is counted."""
    await asyncio.sleep(1.2)
    conn = await stack.connect()
    try:
        rows = await conn.fetch("SELECT datname, xact_commit FROM pg_stat_database")
    finally:
        await conn.close()
    return {r["datname"]: int(r["xact_commit"]) for r in rows if r["datname"]}


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus text exposition's samples of ``name`` with ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass(frozen=True)
class ConsumerStats:
    """Routing's consumer over one run, from its /metrics: batches applied (one transaction
    per partition's records of a fetch), seconds spent applying them, events applied."""

    batches: float
    seconds: float
    applied: float

    @classmethod
    def scrape(cls, text: str) -> ConsumerStats:
        p = "salesops_routing_consumer_"
        return cls(
            batches=_metric(text, p + "processing_seconds_count"),
            seconds=_metric(text, p + "processing_seconds_sum"),
            applied=_metric(text, p + "events_total", outcome="applied"),
        )

    def __sub__(self, other: ConsumerStats) -> ConsumerStats:
        return ConsumerStats(
            self.batches - other.batches,
            self.seconds - other.seconds,
            self.applied - other.applied,
        )

    def line(self, wall: float) -> str:
        if not self.batches or not self.applied:
            return "routing's consumer applied nothing"
        return (
            f"routing's consumer: {self.applied:,.0f} events applied in {self.batches:,.0f} "
            f"batches (mean {self.applied / self.batches:.1f} events, "
            f"{self.seconds / self.batches * 1000:.0f} ms a batch, "
            f"{self.seconds / self.applied * 1000:.1f} ms an event); busy applying "
            f"{self.seconds / wall:.0%} of the {wall:.1f} s"
        )


async def _scrape(server: Server) -> ConsumerStats:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(server.url + "/metrics")
    return ConsumerStats.scrape(r.text)


async def seed_reps(
    http: httpx.AsyncClient, ingest: str, routing: str, *, within: float = 60.0
) -> list[str]:
    """The REPS reps created through ingest (``rep.created``), once routing knows them all;
    their ids. ``ingest``, ``routing``: the services' base URLs."""
    r = await http.post(ingest + "/v1/events", json=rep_events())
    if r.status_code != 202:
        raise RuntimeError(f"seeding reps: {r.status_code} {r.text[:500]}")
    rep_ids = [result["entity_id"] for result in r.json()["results"]]
    deadline = time.monotonic() + within
    while True:
        roster = await http.get(routing + "/v1/reps")
        if roster.status_code == 200 and len(roster.json()["reps"]) >= REPS:
            return rep_ids
        if time.monotonic() > deadline:
            raise RuntimeError(f"routing did not learn the seeded reps within {within:g} s")
        await asyncio.sleep(0.2)


async def _seed(http: httpx.AsyncClient, ingest: Server, routing: Server) -> dict[str, Any]:
    await seed_reps(http, ingest.url, routing.url)
    ruleset = ruleset_with_reps()
    body = orjson.dumps(ruleset.model_dump(mode="json", exclude_defaults=True))
    r = await http.put(
        routing.url + "/v1/routing/ruleset",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    if r.status_code != 200:
        raise RuntimeError(f"importing the ruleset: {r.status_code} {r.text[:1000]}")
    published: dict[str, Any] = r.json()
    published["territories"] = len(ruleset.territories)
    published["rules"] = sum(len(t.rules) for t in ruleset.territories)
    published["bytes"] = len(body)
    return published


@dataclass
class E2EResults:
    seconds: float
    ruleset: dict[str, Any]
    e2e: Run  # at ``how``'s rate: the target's measurement
    low: Run | None  # at ``low_rate``: routing's latency when it keeps up
    alone: Run  # at ``how``'s rate with routing stopped: the baseline
    routing_command: str
    drain_within: float
    how: Load
    low_rate: float

    @property
    def p99(self) -> float:
        return _pct(self.e2e.end_to_end(), 0.99)

    @property
    def sustained(self) -> bool:
        """Every request answered 202 and the leads accepted as fast as they were sent."""
        return self.e2e.load.kept_up and self.e2e.achieved >= 0.95 * self.how.rate

    @property
    def met(self) -> bool:
        return self.how.rate >= RATE and self.p99 <= TARGET_P99_MS and self.sustained


async def run(
    seconds: float,
    *,
    drain_within: float = 60.0,
    low_rate: float = LOW_RATE,
    routing_env: dict[str, str] | None = None,
    routing_module: str | None = None,
    routing_workers: int = 1,
    how: Load = Load(),
) -> E2EResults:
    """See the module docstring; ``low_rate`` 0 skips the run at a low rate."""
    stack = Stack.start()
    reader: TopicReader | None = None
    try:
        ingest = stack.ingest()
        routing = stack.routing(env=routing_env, module=routing_module, workers=routing_workers)
        async with httpx.AsyncClient(headers=API, timeout=120) as http:
            ruleset = await _seed(http, ingest, routing)
        reader = TopicReader(stack.broker.bootstrap)
        await reader.start()
        pids = {
            "ingest": ingest.pid,
            "routing": routing.pid,
            "PostgreSQL": stack.pg_pid,
            "broker": stack.broker_pid,
            "load generator + reader": os.getpid(),
        }

        async def leads(name: str, seed: int, load: Load, until: str = "assigned") -> Run:
            routed = until == "assigned"
            before = await _scrape(routing) if routed else None
            commits_before = await _commits(stack)
            result = await send(
                ingest,
                reader,
                run=name,
                seconds=seconds,
                seed=seed,
                until=until,
                drain_within=drain_within,
                how=load,
                pids=pids,
            )
            if before is not None:
                result.consumer = await _scrape(routing) - before
            commits = await _commits(stack)
            result.commits = {
                db: (n - commits_before.get(db, 0)) / max(1, len(result.accepted))
                for db, n in commits.items()
                if n > commits_before.get(db, 0) and db.startswith("bench")
            }
            return result

        warm = await send(
            ingest,
            reader,
            run="warm",
            seconds=WARM_SECONDS,
            seed=1,
            until="assigned",
            drain_within=60.0,
            how=how,
        )
        if warm.missing(warm.seen.assigned):
            raise RuntimeError(f"{warm.missing(warm.seen.assigned)} warm-up leads not assigned")
        routing.profile_mark(None)
        e2e = await leads("e2e", 2, how)
        low = None
        if low_rate:
            low = await leads("low", 3, Load(low_rate, how.per_request, how.connections))
        routing.profile_mark("routing-e2e")
        routing.stop()
        del pids["routing"]
        alone = await leads("alone", 4, how, until="created")
        return E2EResults(
            seconds,
            ruleset,
            e2e,
            low,
            alone,
            routing.command,
            drain_within,
            how,
            low_rate,
        )
    finally:
        if reader is not None:
            await reader.stop()
        stack.stop()


# -- the report -----------------------------------------------------------------------------


def _pct(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.1f}"


LATENCY_HEADER = ("latency", "leads", "p50 ms", "p95 ms", "p99 ms", "max ms", "not seen")


def _row(name: str, lat: Sequence[float]) -> list[str]:
    missing = sum(math.isinf(x) for x in lat)
    return [
        name,
        f"{len(lat):,}",
        *(_ms(_pct(lat, q)) for q in (0.5, 0.95, 0.99)),
        _ms(lat[-1]) if lat else "–",
        str(missing),
    ]


def _rate(run_: Run) -> str:
    return f"{run_.how.rate:g} leads/s"


CPU_PROCESSES = ("ingest", "routing", "PostgreSQL", "broker")


def cpu_rows(runs: Sequence[tuple[str, Run]]) -> list[list[str]]:
    """CPU ms per lead accepted, per process (``–``: not running), and the services' sum."""
    rows = []
    for name, run_ in runs:
        if run_.cpu is None:
            continue
        per = run_.cpu.per_item(len(run_.accepted))
        cells = [f"{per[p]:.2f}" if p in per else "–" for p in CPU_PROCESSES]
        total = sum(per.get(p, 0.0) for p in CPU_PROCESSES)
        rows.append([name, f"{len(run_.accepted):,}", *cells, f"{total:.2f}"])
    return rows


CPU_HEADER = ("CPU ms per lead", "leads", *CPU_PROCESSES, "services + PostgreSQL + broker")


def report(r: E2EResults) -> str:
    e, a, how = r.e2e, r.alone, r.how
    routed = [e] if r.low is None else [e, r.low]
    rows = []
    for run_ in routed:
        s = run_.seen
        bold = "**" if run_ is e else ""
        rows += [
            _row(
                f"{_rate(run_)}: {bold}accepted → `lead.assigned` seen{bold} (end to end)",
                run_.end_to_end(),
            ),
            _row(
                f"{_rate(run_)}: accepted → `lead.created` seen",
                run_.latencies(run_.accepted, s.created),
            ),
            _row(
                f"{_rate(run_)}: `lead.created` seen → `lead.assigned` seen",
                run_.latencies(s.created, s.assigned),
            ),
        ]
    rows.append(
        _row(
            f"baseline, {_rate(a)}, routing stopped: accepted → `lead.created` seen",
            a.latencies(a.accepted, a.seen.created),
        )
    )
    parts = []
    for run_ in routed:
        s = run_.seen
        parts += [
            _row(
                f"{_rate(run_)}: accepted → `lead.created` stamped (ingest: relay)",
                run_.latencies(run_.accepted, s.created_stamp),
            ),
            _row(
                f"{_rate(run_)}: `lead.created` stamped → `lead.assigned` stamped (routing: "
                "fetch, decide, commit, relay)",
                run_.latencies(s.created_stamp, s.assigned_stamp),
            ),
            _row(
                f"{_rate(run_)}: `lead.assigned` stamped → seen (broker to the reader)",
                run_.latencies(s.assigned_stamp, s.assigned),
            ),
        ]
    http_header = (
        "`POST /v1/events`",
        "leads/s asked",
        "leads/s accepted",
        "requests due",
        "answered 202",
        "p50 ms",
        "p99 ms",
        "max wait for a connection ms",
        "errors",
        "lead statuses",
    )
    http_rows = []
    for run_ in [*routed, a]:
        ld = run_.load
        http_rows.append(
            [
                "routing stopped (baseline)" if run_ is a else "with routing",
                f"{run_.how.rate:g}",
                f"{run_.achieved:,.1f}",
                f"{ld.scheduled:,}",
                f"{ld.requests:,}",
                f"{ld.p50:,.1f}",
                f"{ld.p99:,.1f}",
                f"{ld.max_lag * 1000:,.0f}",
                errors(ld),
                ", ".join(f"{n:,} {k}" for k, n in sorted(run_.statuses.items())),
            ]
        )
    ruleset = r.ruleset
    request = (
        "one event per `POST /v1/events` request"
        if how.per_request == 1
        else f"arrays of {how.per_request} events per `POST /v1/events` request"
    )
    low = (
        f", then {r.seconds:g} s at {r.low_rate:g} leads/s (routing's latency when it keeps up)"
        if r.low is not None
        else ""
    )
    lines = [
        f"{r.seconds:g} s of `lead.created` events due at a fixed {how.rate:g} leads/s{low}, "
        f"{request}, up to {how.connections} connections, into a stack of its own: "
        f"`salesops serve ingest` and `{r.routing_command}` (one process each, default "
        "settings), PostgreSQL with fsync on, the Tansu broker; the load generator and a "
        "reader of both topics (no consumer group, from the end, seated before the first "
        f"lead) in one process. Ruleset: {ruleset['territories']:,} territories, "
        f"{ruleset['rules']:,} rules from `generate_ruleset` "
        f"({ruleset['bytes'] / 1024:,.0f} KiB of JSON, version {ruleset['version']}, "
        f"{len(ruleset['findings'])} findings), its members {REPS} reps seeded through "
        "ingest (`rep.created`) and named by e-mail; leads with "
        "`routing_decision.lead_values` fields, every one unique. Then routing is stopped "
        f"and {how.rate:g} leads/s run again: the baseline.",
        "",
        table(LATENCY_HEADER, rows),
        "",
        "Where the time goes, from the records' timestamps (set by each service's outbox "
        "relay as it publishes; one clock):",
        "",
        table(LATENCY_HEADER, parts),
        "",
        table(http_header, http_rows),
        "",
        table(
            CPU_HEADER,
            cpu_rows(
                [(f"{_rate(x)}, with routing", x) for x in routed]
                + [(f"{_rate(a)}, routing stopped (baseline)", a)]
            ),
        ),
        "",
        "A lead counts from the moment ingest's 202 was read (the HTTP latency, from the "
        "moment the request was due, is in the table above); *seen*: the reader's "
        f"`getmany` returned it. Leads not seen within {r.drain_within:g} s of the last "
        "answer count as never (∞ in the percentiles). *Leads/s accepted*: from the first "
        "request due to the last answer read. *CPU ms per lead*: the CPU time (user and "
        "system, from /proc) of each process and its children while the leads were sent and "
        "drained, divided by the leads accepted; PostgreSQL counts all its backends.",
        "",
    ]
    for run_ in [*routed, a]:
        name = "baseline" if run_ is a else _rate(run_)
        lines.append(f"- {name}: {run_.summary()}")
    lines += [
        "",
        f"End-to-end p99: **{_ms(r.p99)} ms** with {e.achieved:,.1f} leads/s accepted "
        f"(target p99 ≤ {TARGET_P99_MS:g} ms at {RATE:g} leads/s sustained: "
        f"{verdict(r.met)}{'' if r.sustained else '; the rate was not sustained'}); "
        f"ingest → `salesops.crm.v1` alone: p99 "
        f"{_ms(_pct(a.latencies(a.accepted, a.seen.created), 0.99))} ms.",
    ]
    if r.low is not None:
        lines[-1] += (
            f" At {r.low_rate:g} leads/s: p50 {_ms(_pct(r.low.end_to_end(), 0.5))} ms, p99 "
            f"{_ms(_pct(r.low.end_to_end(), 0.99))} ms."
        )
    return "\n".join(lines)


def main() -> None:
    """``python -m bench.routing_e2e [--seconds S]``: this measurement alone."""
    import argparse

    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.routing_e2e", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--drain", type=float, default=60.0)
    p.add_argument("--low-rate", type=float, default=LOW_RATE, help="0: skip that run")
    p.add_argument("--routing-module", default=None, help="e.g. bench.routing_variant")
    p.add_argument("--routing-env", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--routing-workers", type=int, default=1)
    p.add_argument("--rate", type=float, default=RATE)
    p.add_argument("--per-request", type=int, default=CRM_BATCH)
    p.add_argument("--connections", type=int, default=CONNECTIONS)
    args = p.parse_args()
    env = dict(item.split("=", 1) for item in args.routing_env)
    how = Load(rate=args.rate, per_request=args.per_request, connections=args.connections)
    results = uvloop.run(
        run(
            args.seconds,
            drain_within=args.drain,
            low_rate=args.low_rate,
            routing_env=env,
            routing_module=args.routing_module,
            routing_workers=args.routing_workers,
            how=how,
        )
    )
    print(report(results))


if __name__ == "__main__":
    main()
