"""One benchmark run: the servers, the database connection used to check what was stored,
and the helpers every measurement shares (loads, the processor's backlog, CPU shares)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg
import orjson

from bench import payloads
from bench.load import LoadResult, Post, Progress, RequestMaker, run_load
from bench.stack import TOKEN, Server, Stack

API_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Backlog:
    deliveries: int
    items: int


@dataclass
class Session:
    stack: Stack
    baseline: Server
    ingest: Server
    db: asyncpg.Connection
    seconds: float
    hubspot_events: int = 0  # HubSpot events numbered so far (event ids never repeat)
    hubspot_acknowledged: int = 0  # HubSpot events answered 204, every run
    pipedrive_events: int = 0  # Pipedrive events numbered so far
    unknown_contacts: int = payloads.KNOWN_CONTACTS
    _db_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # -- servers ------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        return {
            "ingest": self.ingest.pid,
            "PostgreSQL": self.stack.pg_pid,
            "broker": self.stack.broker_pid,
            "load generator": os.getpid(),
        }

    def restart_ingest(self, *, workers: int = 1, processor: bool = True) -> None:
        self.ingest.stop()
        self.ingest = self.stack.ingest(workers=workers, processor=processor)

    def events_post(self, server: Server | None = None) -> Post:
        return Post((server or self.ingest).url + "/v1/events", API_HEADERS)

    def hubspot_post(self) -> Post:
        return Post(self.ingest.url + payloads.HUBSPOT_PATH, {"Content-Type": "application/json"})

    def pipedrive_post(self) -> Post:
        return Post(self.ingest.url + "/webhooks/pipedrive", payloads.pipedrive_headers())

    def pipedrive_requests(self, post: Post, most: int = 1_000_000) -> RequestMaker:
        """Pipedrive events numbered after every earlier run's (``most`` of them at most)."""
        start = self.pipedrive_events
        self.pipedrive_events += most
        return post.of(lambda n: payloads.pipedrive_event("pd", start + n))

    def hubspot_arrays(self, arrays: int) -> payloads.HubSpotArrays:
        """The next ``arrays`` HubSpot deliveries' worth of unused event numbers (a run may
        send fewer; any later run starts after them)."""
        made = payloads.HubSpotArrays(
            start=self.hubspot_events,
            occurred_ms=int(time.time() * 1000),
            unknown=self.unknown_contacts,
        )
        self.hubspot_events += arrays * payloads.EVENTS_PER_ARRAY
        return made

    # -- load ---------------------------------------------------------------------------

    async def load(
        self,
        post: Post,
        requests: RequestMaker,
        *,
        per_request: int = 1,
        conns: int,
        seconds: float | None = None,
        expect: int | tuple[int, ...] = 202,
        rate: float | None = None,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> LoadResult:
        result = await run_load(
            post.url,
            requests,
            events_per_request=per_request,
            concurrency=conns,
            seconds=self.seconds if seconds is None else seconds,
            expect=expect,
            rate=rate,
            limit=limit,
            progress=progress,
        )
        if post.url.endswith(payloads.HUBSPOT_PATH):
            self.hubspot_acknowledged += result.events
        return result

    @contextmanager
    def phase(self, name: str | None) -> Iterator[None]:
        """A measured phase: with profiling on, its own CPU profile (None: not kept)."""
        self.ingest.profile_mark(None)
        yield
        self.ingest.profile_mark(name)

    # -- the processor's backlog --------------------------------------------------------

    async def query(self, sql: str, *args: object) -> asyncpg.Record:
        """One row from the bench's connection (shared by concurrent watchers)."""
        async with self._db_lock:
            row = await self.db.fetchrow(sql, *args)
        assert row is not None
        return row

    async def backlog(self) -> Backlog:
        row = await self.query(
            "SELECT count(*) AS n, coalesce(sum(items), 0) AS items FROM deliveries "
            "WHERE processed_at IS NULL"
        )
        return Backlog(int(row["n"]), int(row["items"]))

    async def wait_drained(self, within: float = 600.0, poll: float = 0.25) -> bool:
        """Wait (at most ``within`` seconds) until the processor owes nothing."""
        give_up = time.perf_counter() + within
        while (await self.backlog()).deliveries:
            if time.perf_counter() > give_up:
                return False
            await asyncio.sleep(poll)
        return True

    async def outbox(self) -> tuple[int, int]:
        """Outbox rows: (all, not yet published)."""
        row = await self.query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE sent_at IS NULL) AS unsent FROM outbox"
        )
        return int(row["n"]), int(row["unsent"])

    def ingest_warnings(self) -> Counter[str]:
        """WARNING and ERROR messages in every ingest log so far, by message."""
        found: Counter[str] = Counter()
        for server in self.stack.servers:
            if server.log is None or not server.log.exists():
                continue
            for line in server.log.read_text(errors="replace").splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("WARNING", "ERROR"):
                    found[str(entry.get("message", "")).splitlines()[0][:200]] += 1
        return found

    async def stored_items(self, source: str) -> int:
        row = await self.query(
            "SELECT coalesce(sum(items), 0) AS n FROM deliveries WHERE source = $1", source
        )
        return int(row["n"])

    async def fetch_jobs(self) -> int:
        return int((await self.query("SELECT count(*) AS n FROM fetch_jobs"))["n"])
