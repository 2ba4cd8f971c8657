"""Fault injection around real service processes: each service a ``salesops serve``
subprocess that a test can kill -9 and start again, and a load generator posting to ingest
the way a CRM integration does (a batch without an answer is sent again, unchanged)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from salesops_cli.infra import free_port
from tests.e2e.conftest import ready
from tests.support import AUTH, Isolation, api_event


@dataclass
class ServiceProcess:
    """One copy of a service; ``start`` again after ``kill`` restarts it on the same port."""

    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        env = {**self.env, f"SALESOPS_{self.name.upper()}_PORT": str(self.port)}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "salesops_cli.main", "serve", self.name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, within: float = 240.0) -> None:
        """Without blocking the event loop: a load generator goes on meanwhile."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(ready, self.url):
            assert self.process is not None, self.name
            assert self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.tail()}"
            await asyncio.sleep(0.2)

    async def start(self) -> None:
        self.spawn()
        await self.wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever the process was doing."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Stack:
    """The four services as separate processes on one PostgreSQL and broker."""

    NAMES = ("ingest", "routing", "metrics", "forecast")

    def __init__(self, iso: Isolation, home: Path, **extra_env: str) -> None:
        self.iso = iso
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
        self.env.update(iso.env())
        self.env.update(extra_env)
        self.services = {name: self.copy(name) for name in self.NAMES}
        self.extra: list[ServiceProcess] = []

    def copy(self, name: str, index: int = 0) -> ServiceProcess:
        return ServiceProcess(name, self.env, self.home / f"{name}-{index}.log")

    def url(self, name: str) -> str:
        return self.services[name].url

    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.services.items()}

    async def start(self, *names: str) -> None:
        """Start the services named (all by default) side by side."""
        chosen = [self.services[n] for n in names or self.NAMES]
        for service in chosen:
            service.spawn()
        await asyncio.gather(*(s.wait_ready() for s in chosen))

    def stop(self) -> None:
        for service in [*self.extra, *self.services.values()]:
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.log.name}\n{s.tail()}" for s in self.services.values())


REPS = 3
# The catch-up bound the fault tests state: from the moment the load stops until every
# committed event was applied by every consumer. Measured: seconds (see docs/faults.md);
# the bound leaves room for a busy shared CI machine.
CATCH_UP_WITHIN = float(os.environ.get("SALESOPS_TEST_CATCH_UP_WITHIN", "90"))


def rep_events() -> list[dict[str, Any]]:
    return [
        api_event(
            "rep.created",
            f"R{i}",
            {"name": f"Rep {i}", "email": f"r{i}@x.example", "active": True, "team": "East"},
            source_event_id=f"rep:{i}",
        )
        for i in range(REPS)
    ]


def batch_events(number: int, leads: int = 10) -> list[dict[str, Any]]:
    """New leads and two deals closed now (one won, one lost unless ``number`` is even):
    stable source event ids, so that sending the batch again is a retry, not new facts."""
    tag = f"b{number}"
    events = [
        api_event(
            "lead.created",
            f"{tag}L{i}",
            {"email": f"{tag}l{i}@co{tag}x{i}.example", "company": f"Co {tag} {i}"},
            source_event_id=f"{tag}:lead:{i}",
        )
        for i in range(leads)
    ]
    closed = datetime.now(UTC).isoformat()
    for i, outcome in enumerate(("won", "won" if number % 2 == 0 else "lost")):
        deal = f"{tag}D{i}"
        created = {
            "amount": "1000",
            "currency": "USD",
            "stage": "Engaging",
            "owner_source_id": "R0",
        }
        events.append(api_event("deal.created", deal, created, source_event_id=f"{tag}:dc:{i}"))
        events.append(
            api_event(
                f"deal.{outcome}",
                deal,
                {
                    "stage": outcome.title(),
                    "amount": "1000",
                    "currency": "USD",
                    "closed_at": closed,
                },
                source_event_id=f"{tag}:d{outcome}:{i}",
            )
        )
    return events


@asynccontextmanager
async def running_stack(iso: Isolation, home: Path, **extra_env: str) -> AsyncIterator[Stack]:
    """A started ``Stack``, stopped (every process, copies included) at the end."""
    stack = Stack(iso, home, **extra_env)
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


@dataclass
class Load:
    """Posts batches to ingest until stopped, each until it gets its 202 (a retry with the
    same source event ids is deduplicated by ingest). ``acknowledged`` holds every event id
    ingest answered 2xx for; ``failures`` the attempts that got no 2xx (crash, outage)."""

    ingest_url: str
    pause: float = 0.05
    acknowledged: set[str] = field(default_factory=set)
    batches: int = 0
    failures: int = 0
    _posting: asyncio.Event = field(default_factory=asyncio.Event)
    statuses: dict[int, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, within: float = 90.0) -> None:
        """Stop after the batch in flight has been acknowledged."""
        self._stop.set()
        assert self._task is not None
        async with asyncio.timeout(within):
            await self._task

    async def wait_for_batches(self, count: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        target = self.batches + count
        while self.batches < target:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise AssertionError("load generator stopped")
            assert time.monotonic() < deadline, f"only {self.batches} batches acknowledged"
            await asyncio.sleep(0.05)

    async def mid_request(self) -> None:
        """Wait until a request is on its way (sent, not yet answered)."""
        await self._posting.wait()

    async def post(self, http: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
        while True:
            self._posting.set()
            try:
                resp = await http.post(self.ingest_url + "/v1/events", json=events)
            except httpx.TransportError:
                resp = None
            finally:
                self._posting.clear()
            if resp is not None:
                self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 202:
                    self.acknowledged.update(r["event_id"] for r in resp.json()["results"])
                    return
                # 429: back off as told; 5xx: an outage. Anything else would be our bug.
                assert resp.status_code == 429 or resp.status_code >= 500, resp.text
            self.failures += 1
            retry_after = resp.headers.get("Retry-After") if resp is not None else None
            await asyncio.sleep(min(float(retry_after or 0.2), 2.0))

    async def _run(self) -> None:
        async with httpx.AsyncClient(headers=AUTH, timeout=15) as http:
            await self.post(http, rep_events())
            while not self._stop.is_set():
                await self.post(http, batch_events(self.batches + 1))
                self.batches += 1
                await asyncio.sleep(self.pause)
