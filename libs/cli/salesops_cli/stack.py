"""``salesops up``: the whole stack on embedded defaults, supervised.

Starts PostgreSQL and the broker unless ``SALESOPS_DATABASE_URL`` / ``SALESOPS_KAFKA_BOOTSTRAP``
name existing ones, then the four services as child processes; waits until every one is
ready, restarts a service that dies, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from salesops_cli.infra import (
    EmbeddedBroker,
    EmbeddedPostgres,
    InfraError,
    child_preexec,
    port_open,
)
from salesops_cli.main import service_port, service_url

READY_TIMEOUT = 180.0
DEV_POSTGRES_PORT = 54329
DEV_BROKER_PORT = 9092


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


class Stack:
    def __init__(self, *, root: Path, token: str, services: list[str]) -> None:
        self.root = root
        self.token = token
        self.services = services
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: dict[str, Child] = {}
        self._stopping = False

    def say(self, message: str) -> None:
        print(f"salesops: {message}", file=sys.stderr, flush=True)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            env = self._start_infrastructure()
            for name in self.services:
                self._spawn(name, env)
            self._wait_ready()
            self._announce()
            self._supervise(env)
            return 0
        except (InfraError, TimeoutError) as exc:
            self.say(f"error: {exc}")
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            self._stop_all()

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            self.say(f"stopping (signal {signum})")

    def _start_infrastructure(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SALESOPS_API_TOKEN"] = self.token
        self.root.mkdir(parents=True, exist_ok=True)
        if not env.get("SALESOPS_DATABASE_URL"):
            port = int(env.get("SALESOPS_DEV_POSTGRES_PORT", DEV_POSTGRES_PORT))
            if port_open("127.0.0.1", port):
                raise InfraError(f"port {port} is taken; set SALESOPS_DEV_POSTGRES_PORT")
            self.say(f"starting PostgreSQL on 127.0.0.1:{port} (data in {self.root}/postgres)")
            self.postgres = EmbeddedPostgres(data_dir=self.root / "postgres", port=port)
            self.postgres.start()
            env["SALESOPS_DATABASE_URL"] = self.postgres.url
        if not env.get("SALESOPS_KAFKA_BOOTSTRAP"):
            port = int(env.get("SALESOPS_DEV_BROKER_PORT", DEV_BROKER_PORT))
            self.say(f"starting the broker (Tansu, in memory) on 127.0.0.1:{port}")
            self.broker = EmbeddedBroker(port=port, log_path=self.root / "broker.log")
            self.broker.start()
            env["SALESOPS_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
        return env

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        if port_open("127.0.0.1", service_port(name)):
            raise InfraError(
                f"port {service_port(name)} for {name} is taken; set SALESOPS_{name.upper()}_PORT"
            )
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-m", "salesops_cli.main", "serve", name],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(None, signal.SIGTERM),
        )
        log.close()
        previous = self.children.get(name)
        restarts = previous.restarts + 1 if previous else 0
        self.children[name] = Child(name, process, restarts)

    def _ready(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(service_url(name) + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = set(self.services)
        while waiting:
            if self._stopping:
                raise KeyboardInterrupt
            for name in list(waiting):
                child = self.children[name]
                if child.process.poll() is not None:
                    log = self.root / f"{name}.log"
                    raise InfraError(f"{name} exited with {child.process.returncode}; see {log}")
                if self._ready(name):
                    waiting.discard(name)
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {READY_TIMEOUT:.0f}s: {sorted(waiting)}")
            time.sleep(0.2)

    def _announce(self) -> None:
        lines = ["", "salesops is up:"]
        for name in self.services:
            lines.append(f"  {name:<9} {service_url(name)}  (docs: {service_url(name)}/docs)")
        if self.postgres:
            lines.append(f"  postgres  {self.postgres.url}")
        if self.broker:
            lines.append(f"  broker    {self.broker.bootstrap}")
        lines += [
            f"  API token {self.token}",
            f"  logs      {self.root}/<service>.log",
            "Load the demo data with `make demo` (or `salesops demo`). Ctrl-C stops everything.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _supervise(self, env: dict[str, str]) -> None:
        """Restart a service that dies; its outbox and inbox make it catch up."""
        while not self._stopping:
            time.sleep(0.5)
            for name, child in list(self.children.items()):
                code = child.process.poll()
                if code is None or self._stopping:
                    continue
                backoff = min(30.0, 2.0**child.restarts)
                self.say(f"{name} exited with {code}; restarting in {backoff:.0f}s")
                time.sleep(backoff)
                if not self._stopping:
                    self._spawn(name, env)

    def _stop_all(self) -> None:
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in self.children.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        self.say("stopped")
