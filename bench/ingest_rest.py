"""``python -m bench.ingest_rest`` (``make bench BENCH_ARGS="--only-rest"``): ``POST
/v1/events`` alone, at the rates issues 4 and 5 ask of it, next to the bare endpoint measured
in the same run.

A stack of its own (embedded PostgreSQL with fsync on, Tansu, one ``salesops serve ingest``,
the bare baseline app), 500 reps created first. Measured, ``--seconds`` each:

1. the bare endpoint, single events, closed loop on 32 connections (the baseline);
2. ingest, single ``lead.created`` events, closed loop on 32 connections;
3. ingest, 100-event arrays of ``lead.created``, closed loop on 16 connections;
4. ingest, arrays of 100 deal and lead events as bench/metrics_freshness.py sends them, due
   at a fixed 2,000 events/s (issue 5's rate), 16 connections;
5. ingest, one ``lead.created`` per request due at a fixed 200 requests/s (issue 4's rate),
   64 connections.

``SALESOPS_BENCH_PROFILE=DIR`` runs ingest under bench/profiled.py, one CPU profile per
measurement (``python -m bench.profiled --summary DIR/<name>.txt``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import uvloop

from bench import payloads
from bench.cpu import CpuShare, cpu_of
from bench.load import LoadResult, Post, RequestMaker, run_load
from bench.metrics_freshness import API, PER_REQUEST, TENANT, LiveEvents
from bench.metrics_org import Org, Size
from bench.report import LOAD_HEADER, load_row, table
from bench.session import Session
from bench.stack import Stack

ARRAY_RATE = 2_000.0  # events/s, issue 5
SINGLE_RATE = 200.0  # requests/s, issue 4
REPS = 500


@dataclass
class Measured:
    name: str
    result: LoadResult
    cpu: CpuShare
    accepted_per_second: float = 0.0  # fixed rate: events answered 202 per second, from the
    # first request due to the last answer read


class _Answers:
    """Events answered 202 and when the last answer was read (fixed-rate runs)."""

    def __init__(self, per_request: int) -> None:
        self.per_request, self.events, self.last = per_request, 0, 0.0
        self.began = time.perf_counter()

    def __call__(self, n: int, status: int, body: bytes, at: float) -> None:
        if status == 202:
            self.events, self.last = self.events + self.per_request, at

    def rate(self) -> float:
        return self.events / max(1e-9, self.last - self.began)


@dataclass
class RestRun:
    seconds: float
    measured: list[Measured]

    def by_name(self, name: str) -> Measured:
        return next(m for m in self.measured if m.name == name)


async def _seed_reps(url: str) -> None:
    org = Org(Size(reps=REPS, teams=50, deals=0, leads=0), datetime.now(UTC))
    async with httpx.AsyncClient(headers=API, timeout=120) as http:
        resp = await http.post(url + "/v1/events", json=org.rep_api_events(TENANT))
        resp.raise_for_status()


def _live_bodies(live: LiveEvents, rate: float, seconds: float) -> list[bytes]:
    start = datetime.now(UTC) + timedelta(seconds=1)
    count = math.ceil(seconds * rate / PER_REQUEST)
    return [
        live.batch(PER_REQUEST, start + timedelta(seconds=n * PER_REQUEST / rate))
        for n in range(count)
    ]


async def run(seconds: float) -> RestRun:
    stack = Stack.start()
    db = None
    try:
        baseline, ingest = stack.baseline(), stack.ingest()
        db = await stack.connect()
        s = Session(stack, baseline, ingest, db, seconds)
        await _seed_reps(ingest.url)
        post, base_post = s.events_post(), s.events_post(baseline)
        live = LiveEvents("rest", REPS, seed=4)
        live_post = Post(ingest.url + "/v1/events", API)
        # warm-up: every path once for a few seconds
        await s.load(base_post, base_post.of(payloads.single("warm")), conns=32, seconds=2)
        await s.load(post, post.of(payloads.single("warm")), conns=32, seconds=2)
        warm = _live_bodies(live, 500.0, 5.0)
        await s.load(
            live_post,
            lambda n: live_post(warm[n]),
            per_request=PER_REQUEST,
            conns=16,
            seconds=5,
            rate=5.0,
            limit=len(warm),
        )
        out: list[Measured] = []

        async def measure(name: str, load: Awaitable[LoadResult]) -> None:
            with s.phase(name), cpu_of(s.pids()) as cpu:
                result = await load
            out.append(Measured(name, result, cpu))

        async def fixed(
            name: str, requests: RequestMaker, *, per_request: int, rate: float, conns: int
        ) -> None:
            answers = _Answers(per_request)
            load = run_load(
                post.url,
                requests,
                events_per_request=per_request,
                concurrency=conns,
                seconds=seconds,
                rate=rate,
                limit=math.ceil(seconds * rate),
                on_answer=answers,
            )
            with s.phase(name), cpu_of(s.pids()) as cpu:
                answers.began = time.perf_counter()
                result = await load
            out.append(Measured(name, result, cpu, answers.rate()))

        await measure("bare", s.load(base_post, base_post.of(payloads.single("b")), conns=32))
        await measure("single", s.load(post, post.of(payloads.single("s")), conns=32))
        await measure(
            "arrays",
            s.load(post, post.of(payloads.batch("a", 100)), per_request=100, conns=16),
        )
        bodies = _live_bodies(live, ARRAY_RATE, seconds)
        await fixed(
            "live-2000",
            lambda n: live_post(bodies[n]),
            per_request=PER_REQUEST,
            rate=ARRAY_RATE / PER_REQUEST,
            conns=16,
        )
        singles = [payloads.event("r", n).encode() for n in range(math.ceil(seconds * 200))]
        await fixed(
            "single-200", lambda n: post(singles[n]), per_request=1, rate=SINGLE_RATE, conns=64
        )
        return RestRun(seconds, out)
    finally:
        if db is not None:
            await db.close()
        stack.stop()


_TITLES = {
    "bare": "bare FastAPI (baseline)",
    "single": "ingest, single `lead.created`, closed loop",
    "arrays": "ingest, 100-event `lead.created` arrays, closed loop",
    "live-2000": "ingest, 100-event deal and lead arrays, 2,000 events/s due",
    "single-200": "ingest, single `lead.created`, 200 requests/s due",
}


def report(r: RestRun) -> str:
    base = r.by_name("bare").result
    rows = [load_row(_TITLES[m.name], m.result, base.rps) for m in r.measured]
    fixed = []
    for m in r.measured:
        res = m.result
        if res.rate is not None:
            asked = res.rate * (PER_REQUEST if m.name == "live-2000" else 1)
            sustained = res.kept_up and m.accepted_per_second >= 0.95 * asked
            fixed.append(
                f"- {_TITLES[m.name]}: {res.requests:,} of {res.scheduled:,} requests due "
                f"answered 202; **{m.accepted_per_second:,.0f} events/s accepted** of "
                f"{asked:,.0f} asked (from the first request due to the last answer read); "
                f"longest wait for a connection {res.max_lag * 1000:,.0f} ms; sustained: "
                f"{'yes' if sustained else 'no'}"
            )
    cpu = [
        f"- {_TITLES[m.name]}: {m.cpu.line(m.result.seconds)}; per event: "
        + ", ".join(
            f"{name} {m.cpu.used[name] / max(1, m.result.events) * 1000:.2f} ms"
            for name in ("ingest", "PostgreSQL")
        )
        for m in r.measured
        if m.name != "bare"
    ]
    return "\n".join(
        [
            f"{r.seconds:g} s per measurement; {REPS} reps created first; PostgreSQL with "
            "fsync on; one `salesops serve ingest` process; load generator on the same "
            "machine. Fixed-rate rows: latency counts from the moment each request was due.",
            "",
            table(LOAD_HEADER, rows),
            "",
            *fixed,
            "",
            "CPU during each measurement (shares over the measurement's nominal seconds; CPU "
            "seconds per event accepted, which the machine's other load moves less):",
            *cpu,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_rest", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement (10)")
    args = p.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M")
    text = uvloop.run(run(args.seconds))
    print(f"`python -m bench.ingest_rest --seconds {args.seconds:g}` ({started})\n")
    print(report(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
