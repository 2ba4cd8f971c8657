"""Group commit of ``POST /v1/events``: concurrent requests share one transaction.

A request answers 202 only once its events are committed (fsync on). Committing each
request on its own costs a transaction of about ten statements and a WAL flush per request;
instead, requests that arrive while a transaction is under way wait in a queue, and the next
free writer applies everything queued in one transaction, in arrival order, whose commit
answers them all. Each request still gets its own results, and its own error: bad input is
refused before a request joins (``prepare_events``); a transaction that fails for a reason
of its own data is tried again one request at a time, so only the request at fault fails.
A transaction aborted by a deadlock or a serialization failure is tried again whole.

Under light load a request finds a writer free and is committed alone, at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from salesops_common.inbox import is_transient
from salesops_ingest.adapters.deliveries import stop_writers
from salesops_ingest.service_layer.accept import EventResult, PreparedEvents, apply_events
from salesops_ingest.service_layer.pipeline import BatchResult
from salesops_ingest.service_layer.processor import Processor

log = logging.getLogger(__name__)

RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_Item = tuple[PreparedEvents, "asyncio.Future[list[EventResult]]"]


class GroupCommit:
    def __init__(
        self,
        acquire: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
        processor: Processor,
        *,
        writers: int = 2,
        max_events: int = 2000,
        attempts: int = 5,
        on_result: Callable[[BatchResult], Any] | None = None,
    ) -> None:
        self._acquire = acquire
        self._processor = processor
        self._writers = writers
        self._max_events = max_events
        self._attempts = attempts
        self._on_result = on_result
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"events-writer-{i}")
            for i in range(self._writers)
        ]

    async def stop(self) -> None:
        await stop_writers(self._tasks, self._queue)

    @property
    def queued(self) -> int:
        """Requests waiting for a writer."""
        return self._queue.qsize()

    async def accept(self, request: PreparedEvents) -> list[EventResult]:
        """The request's results once they are committed."""
        if not self._tasks:
            raise ConnectionError("ingest is not running")
        future: asyncio.Future[list[EventResult]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def _writer(self) -> None:
        while True:
            first = await self._queue.get()
            batch, events = [first], len(first[0].events)
            while events < self._max_events and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                events += len(item[0].events)
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail(batch, ConnectionError("ingest is stopping"))
                raise

    async def _commit(self, batch: Sequence[_Item]) -> None:
        try:
            answers = await self._apply([request for request, _ in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every waiting request gets an answer
            if len(batch) > 1 and not is_transient(exc):
                # One request's data, most likely: each alone, so only that one fails.
                for item in batch:
                    await self._commit([item])
            else:
                _fail(batch, exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _apply(self, requests: Sequence[PreparedEvents]) -> list[list[EventResult]]:
        attempt = 1
        while True:
            try:
                async with self._acquire() as conn, conn.transaction():
                    result, answers = await apply_events(conn, self._processor, requests)
                break
            except RETRIED as exc:
                if attempt >= self._attempts:
                    raise
                log.warning("events transaction aborted (%s); trying again", type(exc).__name__)
                attempt += 1
        if self._on_result is not None:
            self._on_result(result)
        return answers


def _fail(batch: Sequence[_Item], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
