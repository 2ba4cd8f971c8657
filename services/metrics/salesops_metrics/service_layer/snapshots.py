"""The exposition /metrics shows, kept current by a background task, so that a scrape costs
no computation: every ``interval`` the task looks whether anything a KPI depends on changed
(events applied by any copy, dead letters, quotas, rates; queries.version) and, if so, takes
a new snapshot. A snapshot also expires after ``max_age`` (rolling windows move with the
clock).

The task's snapshots are paced per family (Kpis.exposition): a family whose tables changed
is read again once it rested as long as its last read took, and keeps its rows until then,
so that the cheap families (deals closed: the win rate) follow the data at the task's pace
and are not held back by the dear ones (lead response times, stage moves), which follow it
at theirs. The task itself rests as long as its last snapshot took outside the families it
read (the version, the roster, the totals, rendering). However long snapshots take on a busy
machine, each family is read at most half of the time, and the work around the families takes
at most half of it too (families read side by side may together take more: the price of not
holding the cheap ones back).

A scrape serves the newest snapshot when it was taken less than ``staleness`` ago, or when
nothing changed since; otherwise it waits for one taken after the scrape began (shared with
any other scrape waiting; never a paced one, which may have kept a family that changed). So
/metrics lags the data by at most ``staleness`` (0: never), and in steady state each family by
at most ``interval`` plus twice the time its read takes, plus the time of the snapshot it is
read in.

Each snapshot is computed from the one before (``compute(previous, paced)``): what did not change
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
        compute: Callable[[Exposition | None, bool], Awaitable[Exposition]],
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
        self._task_paced = False
        self._rebuilds = 0

    async def current(self) -> Snapshot:
        """What a scrape shows (see the module docstring)."""
        snapshot = self._latest
        if snapshot is not None and self._clock() - snapshot.taken < self._staleness:
            return snapshot
        return await self.refresh()

    async def text(self) -> bytes:
        return (await self.current()).text

    async def refresh(self, *, paced: bool = False) -> Snapshot:
        """The newest snapshot if nothing changed since it was taken (and it kept no family
        that had changed), else a new one; ``paced``: one whose families that changed are
        read again only when due (Kpis.exposition), else one with all of them."""
        asked = self._clock()
        snapshot = self._latest
        if snapshot is not None and asked - snapshot.taken < self._max_age:
            if snapshot.exposition.complete and await self._version() == (
                snapshot.exposition.version
            ):
                return snapshot
        return await self._taken_after(asked, paced=paced)

    def forget(self) -> None:
        """After a rebuild: the numbers are the same unless a fix changed them; take new ones
        rather than trust the version (which a rebuild leaves as it was), and keep nothing
        of those taken before."""
        self._latest = None
        self._rebuilds += 1

    async def keep_current(self) -> None:
        """The background task: a paced run of ``refresh`` every ``interval``, or after a
        rest as long as the run took outside the families it read (each family rests as
        long as its own read took: Kpis.exposition's pacing)."""
        while True:
            began = self._clock()
            busy = 0.0
            try:
                busy = _outside_families(await self.refresh(paced=True), began, self._clock())
            except Exception:  # noqa: BLE001 - a failed read is tried again next time
                log.warning("KPI snapshot failed", exc_info=True)
                busy = self._clock() - began
            took = self._clock() - began
            await self._sleep(max(self._interval - took, busy))

    async def _taken_after(self, moment: float, *, paced: bool = False) -> Snapshot:
        while True:
            task = self._task
            if task is None or task.done():
                self._task_began = self._clock()
                self._task_paced = paced
                task = self._task = asyncio.ensure_future(self._take(self._task_began, paced))
            if self._task_began >= moment and (paced or not self._task_paced):
                return await asyncio.shield(task)
            # began before we asked, or may keep families that changed: may miss what we
            # must show
            await asyncio.shield(task)

    async def _take(self, began: float, paced: bool = False) -> Snapshot:
        latest, rebuilds = self._latest, self._rebuilds
        kept = latest is not None and latest.rebuilds == rebuilds
        exposition = await self._compute(latest.exposition if latest and kept else None, paced)
        # tens of milliseconds of Python: in a thread, the consumers sharing the event loop
        # get their turn every few milliseconds instead of waiting for it to end
        text = await asyncio.to_thread(self._render, exposition)
        snapshot = Snapshot(exposition, text, began, rebuilds)
        self._observe(self._clock() - began)
        if self._latest is None or self._latest.taken <= began:
            self._latest = snapshot
        return snapshot


def _outside_families(snapshot: Snapshot, began: float, ended: float) -> float:
    """How long a snapshot taken in [began, ended] spent outside the families it read (the
    version, the roster, the totals, rendering; the longest family's read is what the
    others ran beside): all of it when it was taken before ``began``."""
    took = ended - began
    if snapshot.taken < began:
        return took
    return max(took - snapshot.exposition.longest_read, 0.0)
