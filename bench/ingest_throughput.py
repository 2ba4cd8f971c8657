"""Accepted-and-durable events per second through ``POST /v1/events`` (single events and
100-event arrays), next to a bare FastAPI endpoint measured in the same run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.cpu import cpu_of
from bench.load import LoadResult, run_load
from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from salesops_common.settings import database_dsn

TOKEN = "bench-token"
ARRAY_CONNECTIONS = 16
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
_EVENT = (
    '{"type":"lead.created","source":"api","tenant":"bench","source_event_id":"%s",'
    '"occurred_at":"2026-11-28T10:00:00+00:00","data":{"source_id":"%s","email":'
    '"buyer%s@acme.example","first_name":"Ann","last_name":"Buyer","company":"Acme",'
    '"country":"US","lead_source":"Web","owner_source_id":"rep-%d"}}'
)


def event(run: str, n: int) -> str:
    key = f"{run}-{n}"
    return _EVENT % (key, key, key, n % 50)


BodyMaker = Callable[[int], bytes]


def single(run: str) -> BodyMaker:
    return lambda n: event(run, n).encode()


def batch(run: str, size: int) -> BodyMaker:
    return lambda n: ("[" + ",".join(event(run, n * size + i) for i in range(size)) + "]").encode()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def wait_ready(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def start_baseline(log: Path) -> Server:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline_app:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, "/docs")
    return Server(process, url)


def start_ingest(env: dict[str, str], log: Path, *, workers: int = 1) -> Server:
    port = free_port()
    env = {**env, "SALESOPS_INGEST_PORT": str(port), "SALESOPS_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "salesops_cli.main", "serve", "ingest", f"--workers={workers}"]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, "/readyz")
    return Server(process, url)


async def durable_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM received_events"))
    finally:
        await conn.close()


def pg_pid(pg: EmbeddedPostgres) -> int:
    assert pg.process is not None
    return pg.process.pid


def broker_pid(broker: EmbeddedBroker) -> int:
    assert broker.process is not None
    return broker.process.pid


def row(name: str, r: LoadResult, baseline_rps: float) -> str:
    return (
        f"| {name} | {r.rps:,.0f} | {r.eps:,.0f} | {r.p50:.1f} | {r.pct(0.99):.1f} | "
        f"{r.errors} | {r.eps / baseline_rps:.2f} |"
    )


async def measure(seconds: float, concurrency: int) -> str:
    root = Path(tempfile.mkdtemp(prefix="salesops-bench-"))
    pg = EmbeddedPostgres(data_dir=root / "pg", port=free_port())
    pg.start()  # fsync on: a 202 means the event is on disk
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    broker.start()
    env = {
        **os.environ,
        "SALESOPS_API_TOKEN": TOKEN,
        "SALESOPS_DATABASE_URL": pg.url,
        "SALESOPS_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESOPS_INGEST_DATABASE": "bench",
    }
    baseline = start_baseline(root / "baseline.log")
    ingest = start_ingest(env, root / "ingest.log")
    try:

        async def load(
            url: str,
            body: BodyMaker,
            *,
            per_request: int = 1,
            conns: int = concurrency,
            duration: float = seconds,
        ) -> LoadResult:
            return await run_load(
                url + "/v1/events",
                body,
                events_per_request=per_request,
                concurrency=conns,
                seconds=duration,
                headers=HEADERS,
            )

        await load(baseline.url, single("warm"), duration=2)
        await load(ingest.url, single("warm"), duration=2)
        base = await load(baseline.url, single("b"))
        pids = {
            "ingest": ingest.process.pid,
            "postgres": pg_pid(pg),
            "broker": broker_pid(broker),
            "load generator": os.getpid(),
        }
        with cpu_of(pids) as one_cpu:
            one = await load(ingest.url, single("s"))
        with cpu_of(pids) as hundred_cpu:
            hundred = await load(
                ingest.url, batch("h", 100), per_request=100, conns=ARRAY_CONNECTIONS
            )
        ingest.stop()
        ingest = start_ingest(env, root / "ingest2.log", workers=2)
        await load(ingest.url, batch("warm2", 100), per_request=100, duration=2)
        pids["ingest"] = ingest.process.pid
        with cpu_of(pids) as two_cpu:
            two = await load(ingest.url, batch("w", 100), per_request=100, conns=ARRAY_CONNECTIONS)
        stored = await durable_count(database_dsn(pg.url, "bench"))
    finally:
        ingest.stop()
        baseline.stop()
        broker.stop()
        pg.stop()
    lines = [
        f"{seconds:.0f} s per measurement; {concurrency} connections "
        f"({ARRAY_CONNECTIONS} for arrays); "
        "PostgreSQL with fsync on; one ingest process unless said; load generator on the "
        "same machine.",
        "",
        "| endpoint | requests/s | events/s | p50 ms | p99 ms | errors | events/s ÷ bare rps |",
        "|---|---|---|---|---|---|---|",
        row("bare FastAPI (baseline)", base, base.rps),
        row("ingest, single events", one, base.rps),
        row("ingest, 100-event arrays", hundred, base.rps),
        row("ingest ×2 workers, 100-event arrays", two, base.rps),
        "",
        f"Single-event requests per second vs the bare endpoint: **{one.rps / base.rps:.2f}**. "
        f"Arrays: **{hundred.eps:,.0f} events/s** (target ≥ 5,000). "
        f"Rows durably stored after the run (incl. warm-up): {stored:,}.",
        "",
        f"- single events: {one_cpu.line(one.seconds)}",
        f"- 100-event arrays: {hundred_cpu.line(hundred.seconds)}",
        f"- 100-event arrays, 2 workers: {two_cpu.line(two.seconds)}",
    ]
    return "\n".join(lines)


def main(seconds: float = 10, concurrency: int = 32) -> str:
    import uvloop

    return uvloop.run(measure(seconds, concurrency))
