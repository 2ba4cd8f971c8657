"""The exposition /metrics shows, kept current by a background task, so that a scrape costs
no computation: every ``interval`` the task looks whether anything a KPI depends on changed
(events applied by any copy, dead letters, quotas, rates; queries.version) and, if so, takes
a new snapshot. A snapshot also expires after ``max_age`` (rolling windows move with the
clock). The task rests at least as long as its last snapshot took: however long snapshots
take on a busy machine, they use at most half of the time the consumers share with them.

A scrape serves the newest snapshot when it was taken less than ``staleness`` ago, or when
nothing changed since; otherwise it waits for one taken after the scrape began (shared with
any other scrape waiting). So /metrics lags the data by at most ``staleness`` (0: never), and
in steady state by at most ``interval`` plus the time a snapshot takes.

Each snapshot is computed from the one before (``compute(previous)``): what did not change
since is kept rather than read again (service_layer/kpis.Kpis.exposition). After a rebuild
(:meth:`LatestExposition.forget`) none is: the next is computed whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from salesops_metrics.service_layer.kpis import Exposition

log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True)
class Snapshot:
    exposition: Exposition
    text: bytes  # as rendered for /metrics
    taken: float  # when its computation began: its data is at least this recent
    rebuilds: int = 0  # rebuilds forgotten before its computation began


class LatestExposition:
    def __init__(
        self,
        compute: Callable[[Exposition | None], Awaitable[Exposition]],
        version: Callable[[], Awaitable[Hashable]],
        *,
        render: Callable[[Exposition], bytes],
        interval: float,
        staleness: float,
        max_age: float = 10.0,
        observe: Callable[[float], None] = lambda seconds: None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._compute = compute
        self._version = version
        self._render = render
        self._interval, self._staleness, self._max_age = interval, staleness, max_age
        self._observe = observe
        self._clock = clock
        self._sleep = sleep
        self._latest: Snapshot | None = None
        self._task: asyncio.Future[Snapshot] | None = None
        self._task_began = 0.0
        self._rebuilds = 0

    async def current(self) -> Snapshot:
        """What a scrape shows (see the module docstring)."""
        snapshot = self._latest
        if snapshot is not None and self._clock() - snapshot.taken < self._staleness:
            return snapshot
        return await self.refresh()

    async def text(self) -> bytes:
        return (await self.current()).text

    async def refresh(self) -> Snapshot:
        """The newest snapshot if nothing changed since it was taken, else a new one."""
        asked = self._clock()
        snapshot = self._latest
        if snapshot is not None and asked - snapshot.taken < self._max_age:
            if await self._version() == snapshot.exposition.version:
                return snapshot
        return await self._taken_after(asked)

    def forget(self) -> None:
        """After a rebuild: the numbers are the same unless a fix changed them; take new ones
        rather than trust the version (which a rebuild leaves as it was), and keep nothing
        of those taken before."""
        self._latest = None
        self._rebuilds += 1

    async def keep_current(self) -> None:
        """The background task: a run of ``refresh`` every ``interval``, or after a rest as
        long as the run took."""
        while True:
            began = self._clock()
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - a failed read is tried again next time
                log.warning("KPI snapshot failed", exc_info=True)
            took = self._clock() - began
            await self._sleep(max(self._interval - took, took))

    async def _taken_after(self, moment: float) -> Snapshot:
        while True:
            task = self._task
            if task is None or task.done():
                self._task_began = self._clock()
                task = self._task = asyncio.ensure_future(self._take(self._task_began))
            if self._task_began >= moment:
                return await asyncio.shield(task)
            await asyncio.shield(task)  # began before we asked: may miss what we must show

    async def _take(self, began: float) -> Snapshot:
        latest, rebuilds = self._latest, self._rebuilds
        kept = latest is not None and latest.rebuilds == rebuilds
        exposition = await self._compute(latest.exposition if latest and kept else None)
        # tens of milliseconds of Python: in a thread, the consumers sharing the event loop
        # get their turn every few milliseconds instead of waiting for it to end
        text = await asyncio.to_thread(self._render, exposition)
        snapshot = Snapshot(exposition, text, began, rebuilds)
        self._observe(self._clock() - began)
        if self._latest is None or self._latest.taken <= began:
            self._latest = snapshot
        return snapshot
