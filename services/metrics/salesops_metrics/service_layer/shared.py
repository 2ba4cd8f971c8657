"""KPI reads shared between identical requests, and bounded.

A KPI read runs statements over the whole history of its window: when requests arrive faster
than one read takes, running one read per request piles them up in PostgreSQL, each slower for
the others. Here identical requests (same key) share one computation, and at most ``limit``
computations run at once.

Freshness is unchanged: a request is only ever answered by a computation that *starts after
it arrived*. A request joins the key's computation that has not started yet (queued behind the
key's running one, or waiting for a slot), or else makes one; a computation that has started
takes no one. So one key has at most one computation running and one waiting, whatever the
number of requests, and every answer reads a snapshot taken after its request arrived.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SharedReads:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._slots = asyncio.Semaphore(limit)
        # per key: the computation not started yet (requests join it), and the one running
        self._waiting: dict[Hashable, asyncio.Task[Any]] = {}
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        # since the process started, by kind: computations started, and requests
        self.started: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()

    async def run(
        self, key: Hashable, compute: Callable[[], Awaitable[T]], *, kind: str = "read"
    ) -> T:
        """``compute()``'s result, from a computation started after this call. ``kind``
        (a few fixed names) only counts."""
        self.requests[kind] += 1
        flight = self._waiting.get(key)
        if flight is None or flight.done():  # done before it started: cancelled at shutdown
            flight = asyncio.ensure_future(self._fly(key, compute, kind))
            flight.add_done_callback(_retrieve)
            self._waiting[key] = flight
        # a request that goes away (a client disconnecting) leaves the others theirs
        result: T = await asyncio.shield(flight)
        return result

    async def _fly(self, key: Hashable, compute: Callable[[], Awaitable[T]], kind: str) -> T:
        me = asyncio.current_task()
        assert me is not None
        before = self._running.get(key)
        if before is not None:
            # one computation of a key at a time: what arrives meanwhile joins this one
            await asyncio.wait([before])
        async with self._slots:
            # it starts now: after every request that joined it arrived; no one else joins
            if self._waiting.get(key) is me:
                del self._waiting[key]
            self._running[key] = me
            self.started[kind] += 1
            try:
                return await compute()
            finally:
                if self._running.get(key) is me:
                    del self._running[key]


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Every request that joined may have gone: the exception is theirs, not the loop's."""
    if not task.cancelled():
        task.exception()
