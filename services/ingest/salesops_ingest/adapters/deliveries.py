"""The raw delivery archive: webhook requests stored as received, with group commit.

A webhook answers only once its delivery is committed. Committing each request on its own
costs a round trip and a WAL flush per request; instead, concurrent requests queue their
deliveries and a few writer tasks insert whatever is queued in one statement, so under load
one commit carries many requests and each request still waits only for its own commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from salesops_common.aio import stop_tasks
from salesops_ingest.adapters.state import loads_json

log = logging.getLogger(__name__)

_INSERT = """
    INSERT INTO deliveries (source, headers, body, items)
    SELECT s, h::jsonb, b, n FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[])
        AS x(s, h, b, n)
    RETURNING id
"""
_INSERT_PROCESSED = """
    INSERT INTO deliveries (source, headers, body, items, processed_at)
    VALUES ($1, $2::text::jsonb, $3, $4, now())
    RETURNING id
"""

_INSERT_PROCESSED_WRITE = _INSERT_PROCESSED.replace("RETURNING id", "")


async def stop_writers(tasks: list[asyncio.Task[None]], queue: asyncio.Queue[Any]) -> None:
    """Cancel writer tasks, then fail the futures of what is still queued (each item a tuple
    ending with the future its request awaits)."""
    await stop_tasks(tasks, what="writer")
    tasks.clear()
    while not queue.empty():
        future = queue.get_nowait()[-1]
        if not future.done():
            future.set_exception(ConnectionError("ingest is stopping"))


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    source: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    replay: bool = False


def _headers_json(headers: Mapping[str, str]) -> str:
    return orjson.dumps(dict(headers)).decode()


class DeliveryStore:
    """Stores deliveries durably; ``store`` returns once the row is committed."""

    def __init__(
        self, dsn: str, *, writers: int = 3, max_batch: int = 512, pool_size: int = 8
    ) -> None:
        self._pool_size = pool_size
        self._dsn = dsn
        self._writers = writers
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[str, str, bytes, int, asyncio.Future[int]]] = (
            asyncio.Queue()
        )
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=max(self._pool_size, self._writers + 2),
            command_timeout=60,
        )
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"delivery-writer-{i}")
            for i in range(self._writers)
        ]

    async def stop(self) -> None:
        await stop_writers(self._tasks, self._queue)
        if self._pool is not None:
            try:  # close waits for every connection to come back: bounded
                async with asyncio.timeout(10.0):
                    await self._pool.close()
            except TimeoutError:
                log.error("delivery store: connections still busy at stop; terminated")
                self._pool.terminate()
            self._pool = None

    def acquire(self) -> Any:
        """A connection of the store's pool (for ingest's own short queries)."""
        if self._pool is None:
            raise ConnectionError("ingest is not running")
        return self._pool.acquire()

    async def store(self, source: str, headers: Mapping[str, str], body: bytes, items: int) -> int:
        if not self._tasks:
            raise ConnectionError("delivery store is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((source, _headers_json(headers), body, items, future))
        return await future

    async def _writer(self) -> None:
        assert self._pool is not None
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._pool.acquire() as conn:
                    rows = await conn.fetch(
                        _INSERT,
                        [b[0] for b in batch],
                        [b[1] for b in batch],
                        [b[2] for b in batch],
                        [b[3] for b in batch],
                    )
            except asyncio.CancelledError:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(ConnectionError("ingest is stopping"))
                raise
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(row[0])


def processed_write(
    source: str, headers: Mapping[str, str], body: bytes, items: int
) -> tuple[str, Sequence[Any]]:
    """The same archive as :func:`insert_processed`, as a write to send with others
    (``salesops_common.writes``) when nothing needs the delivery's id."""
    return _INSERT_PROCESSED_WRITE, (source, _headers_json(headers), body, items)


async def insert_processed(
    conn: asyncpg.Connection, source: str, headers: Mapping[str, str], body: bytes, items: int
) -> int:
    """Archive a delivery processed in the caller's transaction (REST, CSV, API reads)."""
    return int(await conn.fetchval(_INSERT_PROCESSED, source, _headers_json(headers), body, items))


async def claim_pending(conn: asyncpg.Connection, limit: int) -> list[Delivery]:
    rows = await conn.fetch(
        """
        SELECT id, source, received_at, headers, body, replay FROM deliveries
        WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
        """,
        limit,
    )
    return [_delivery(r) for r in rows]


async def get(conn: asyncpg.Connection, delivery_id: int) -> Delivery | None:
    row = await conn.fetchrow(
        "SELECT id, source, received_at, headers, body, replay FROM deliveries WHERE id = $1",
        delivery_id,
    )
    return _delivery(row) if row else None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        source=row["source"],
        received_at=row["received_at"],
        headers=loads_json(row["headers"]),
        body=bytes(row["body"]),
        replay=row["replay"],
    )


async def mark_processed(
    conn: asyncpg.Connection, ids: Sequence[int], errors: Mapping[int, str] | None = None
) -> None:
    errors = errors or {}
    await conn.execute(
        """
        UPDATE deliveries d SET processed_at = now(), replay = false,
               attempts = d.attempts + 1, error = u.error
        FROM unnest($1::bigint[], $2::text[]) AS u(id, error) WHERE d.id = u.id
        """,
        list(ids),
        [errors.get(i) for i in ids],
    )


async def mark_failed_attempt(conn: asyncpg.Connection, delivery_id: int, error: str) -> int:
    return int(
        await conn.fetchval(
            "UPDATE deliveries SET attempts = attempts + 1, error = $2 WHERE id = $1 "
            "RETURNING attempts",
            delivery_id,
            error,
        )
    )


async def schedule_replay(
    conn: asyncpg.Connection, *, since: datetime, until: datetime | None, source: str | None
) -> int:
    result = await conn.execute(
        """
        UPDATE deliveries SET processed_at = NULL, replay = true
        WHERE received_at >= $1 AND ($2::timestamptz IS NULL OR received_at < $2)
          AND ($3::text IS NULL OR source = $3) AND processed_at IS NOT NULL
        """,
        since,
        until,
        source,
    )
    await conn.execute("SELECT pg_notify('ingest_deliveries', '')")
    return int(result.split()[-1])


async def pending_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM deliveries WHERE processed_at IS NULL"))


async def prune_archive(conn: asyncpg.Connection, *, older_than: datetime) -> int:
    """Delete processed deliveries received before ``older_than`` (the archive's retention);
    one not processed yet is kept whatever its age."""
    result = await conn.execute(
        "DELETE FROM deliveries WHERE received_at < $1 AND processed_at IS NOT NULL", older_than
    )
    return int(result.split()[-1])
