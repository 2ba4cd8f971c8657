"""The servers a benchmark runs against, started as real processes: an embedded PostgreSQL
(fsync on), the Tansu broker, ingest (``salesops serve ingest``), and the bare baseline app.

Everything lives in a fresh ``/tmp/salesops-bench-*`` directory; the database files are
removed when the run ends, the server logs are kept.

``SALESOPS_BENCH_PROFILE=DIR`` starts a one-process ingest under bench/profiled.py's CPU
sampler instead (same app, same uvicorn options); :meth:`Server.profile_mark` then closes
one profile per measured phase.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import payloads
from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port, remove_tree
from salesops_common.settings import database_dsn

TOKEN = "bench-token"
DATABASE = "bench"
ROUTING_DATABASE = "bench_routing"
METRICS_DATABASE = "bench_metrics"
PROFILE_ENV = "SALESOPS_BENCH_PROFILE"


def _wait_ready(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 300  # a bound for a server that never comes up: a busy
    # shared machine has taken minutes to start four services at once
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    command: str
    profile_dir: Path | None = None
    log: Path | None = None
    _marks: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)

    def profile_mark(self, name: str | None) -> None:
        """Profiling only: end the current profile, keeping it as ``name`` (None: drop it)."""
        if self.profile_dir is None:
            return
        self._marks += 1
        self.process.send_signal(signal.SIGUSR1)
        dumped = self.profile_dir / f"part-{self._marks}.txt"
        deadline = time.monotonic() + 10
        while not dumped.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not dumped.exists():
            return
        if name is None:
            dumped.unlink()
        else:
            dumped.rename(self.profile_dir / f"{name}.txt")


@dataclass
class Stack:
    root: Path
    pg: EmbeddedPostgres
    broker: EmbeddedBroker
    env: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)

    @classmethod
    def start(cls) -> Stack:
        root = Path(tempfile.mkdtemp(prefix="salesops-bench-"))
        pg = EmbeddedPostgres(data_dir=root / "pg", port=free_port())
        pg.start()  # fsync on: a 2xx means the delivery is on disk
        broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
        broker.start()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_") or k == PROFILE_ENV
        }
        env.update(
            SALESOPS_API_TOKEN=TOKEN,
            SALESOPS_DATABASE_URL=pg.url,
            SALESOPS_KAFKA_BOOTSTRAP=broker.bootstrap,
            SALESOPS_INGEST_DATABASE=DATABASE,
            SALESOPS_LOG_LEVEL="WARNING",
            # The per-source limiter would answer 429 at the rates measured here.
            SALESOPS_INGEST_RATE_LIMIT="0",
            SALESOPS_INGEST_SYNC_INTERVAL_MINUTES="0",
            SALESOPS_HUBSPOT_CLIENT_SECRET=payloads.HUBSPOT_SECRET,
            SALESOPS_PUBLIC_BASE_URL=payloads.PUBLIC_BASE_URL,
            SALESOPS_HUBSPOT_PORTAL_IDS=str(payloads.HUBSPOT_PORTAL),
            SALESOPS_PIPEDRIVE_USER=payloads.PIPEDRIVE_USER,
            SALESOPS_PIPEDRIVE_PASSWORD=payloads.PIPEDRIVE_PASSWORD,
            SALESOPS_PIPEDRIVE_COMPANY_IDS=str(payloads.PIPEDRIVE_COMPANY),
        )
        return cls(root=root, pg=pg, broker=broker, env=env)

    @property
    def dsn(self) -> str:
        return database_dsn(self.pg.url, DATABASE)

    @property
    def pg_pid(self) -> int:
        assert self.pg.process is not None
        return self.pg.process.pid

    @property
    def broker_pid(self) -> int:
        assert self.broker.process is not None
        return self.broker.process.pid

    def baseline(self) -> Server:
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
        with (self.root / "baseline.log").open("ab") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        server = Server(process, f"http://127.0.0.1:{port}", "uvicorn bench.baseline_app:app")
        self.servers.append(server)
        _wait_ready(server.url, process, "/docs")
        return server

    def ingest(self, *, workers: int = 1, processor: bool = True) -> Server:
        """``salesops serve ingest``; ``processor=False`` runs bench/noprocessor.py."""
        port = free_port()
        env = {**self.env, "SALESOPS_INGEST_PORT": str(port)}
        profile = env.pop(PROFILE_ENV, None)
        if workers != 1 or not processor:
            profile = None
        args = ["serve", "ingest", f"--workers={workers}"]
        if profile:
            Path(profile).mkdir(parents=True, exist_ok=True)
            env[PROFILE_ENV] = profile
            cmd = [sys.executable, "-m", "bench.profiled", *args]
        elif not processor:
            cmd = [sys.executable, "-m", "bench.noprocessor", *args]
        else:
            cmd = [sys.executable, "-m", "salesops_cli.main", *args]
        log = self.root / f"ingest-{len(self.servers)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(
            process,
            f"http://127.0.0.1:{port}",
            ("salesops " if processor else "python -m bench.noprocessor ") + " ".join(args),
            Path(profile) if profile else None,
            log,
        )
        self.servers.append(server)
        _wait_ready(server.url, process, "/readyz")
        return server

    def routing(
        self, *, env: dict[str, str] | None = None, module: str | None = None, workers: int = 1
    ) -> Server:
        """``salesops serve routing`` (``env``: more variables; ``module``: run ``python -m
        module serve routing`` instead, a diagnosis wrapper like bench/noprocessor.py, or
        bench/profiled.py or bench/sql_timing.py with ``SALESOPS_BENCH_PROFILE`` in ``env``)."""
        port = free_port()
        base = {k: v for k, v in self.env.items() if k != PROFILE_ENV}
        env = {
            **base,
            "SALESOPS_ROUTING_PORT": str(port),
            "SALESOPS_ROUTING_DATABASE": ROUTING_DATABASE,
            **(env or {}),
        }
        args = ["serve", "routing"] + ([f"--workers={workers}"] if workers != 1 else [])
        cmd = [sys.executable, "-m", module or "salesops_cli.main", *args]
        log = self.root / f"routing-{len(self.servers)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        name = f"python -m {module} " if module else "salesops "
        # bench/profiled.py and bench/sql_timing.py write a part per SIGUSR1 there
        profile = Path(env[PROFILE_ENV]) if module and PROFILE_ENV in env else None
        server = Server(process, f"http://127.0.0.1:{port}", name + " ".join(args), profile, log)
        self.servers.append(server)
        _wait_ready(server.url, process, "/readyz")
        return server

    def metrics(self, *, env: dict[str, str] | None = None, module: str | None = None) -> Server:
        """``salesops serve metrics`` on its own database (``env``: more variables; ``module``:
        ``python -m module serve metrics``, e.g. bench/profiled.py with
        ``SALESOPS_BENCH_PROFILE`` in ``env``)."""
        port = free_port()
        base = {k: v for k, v in self.env.items() if k != PROFILE_ENV}
        env = {
            **base,
            "SALESOPS_METRICS_PORT": str(port),
            "SALESOPS_METRICS_DATABASE": METRICS_DATABASE,
            **(env or {}),
        }
        args = ["serve", "metrics"]
        cmd = [sys.executable, "-m", module or "salesops_cli.main", *args]
        log = self.root / f"metrics-{len(self.servers)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        name = f"python -m {module} " if module else "salesops "
        profile = Path(env[PROFILE_ENV]) if module and PROFILE_ENV in env else None
        server = Server(process, f"http://127.0.0.1:{port}", name + " ".join(args), profile, log)
        self.servers.append(server)
        _wait_ready(server.url, process, "/readyz")
        return server

    @property
    def metrics_dsn(self) -> str:
        return database_dsn(self.pg.url, METRICS_DATABASE)

    def stop(self) -> None:
        """Stop everything and drop the database files (GBs after a run); the logs stay in
        ``root`` (``SALESOPS_BENCH_KEEP=1`` keeps the database too)."""
        for server in reversed(self.servers):
            server.stop()
        self.broker.stop()
        self.pg.stop()
        if not os.environ.get("SALESOPS_BENCH_KEEP"):
            remove_tree(self.pg.data_dir)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)
