"""What /metrics shows: the newest snapshot while it is recent or nothing changed, a new one
taken after the scrape began otherwise, one computation shared by everyone waiting, and a
background task that never spends more than half of the time on snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

import pytest

from salesops_metrics.service_layer.kpis import Exposition
from salesops_metrics.service_layer.snapshots import LatestExposition

pytestmark = pytest.mark.unit


class Data:
    """The database behind the snapshots: a version, a clock, and computations that take as
    long as ``takes`` says (in clock time) once ``release`` lets them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.version = 1
        self.computed = 0
        self.takes = 0.0
        self.release: asyncio.Event | None = None
        self.previous: list[Hashable] = []  # the version of the snapshot each was computed from
        self.paced: list[bool] = []  # whether each was asked for paced
        self.deferring = False  # paced computations keep a family that changed
        self.longest_read = 0.0  # clock time of the longest family's read in each

    def clock(self) -> float:
        return self.now

    async def read_version(self) -> Hashable:
        return self.version

    async def compute(self, previous: Exposition | None, paced: bool = False) -> Exposition:
        self.computed += 1
        self.previous.append(previous.version if previous else None)
        self.paced.append(paced)
        seen = self.version
        if self.release is not None:
            await self.release.wait()
        self.now += self.takes
        complete = not (paced and self.deferring)
        return Exposition(
            {}, {}, {}, version=seen, complete=complete, longest_read=self.longest_read
        )

    def latest(
        self,
        *,
        staleness: float = 0.5,
        max_age: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> LatestExposition:
        return LatestExposition(
            self.compute,
            self.read_version,
            render=lambda e: str(e.version).encode(),
            interval=0.25,
            staleness=staleness,
            max_age=max_age,
            clock=self.clock,
            sleep=sleep,
        )


async def test_a_recent_snapshot_is_shown_without_reading_anything() -> None:
    data = Data()
    latest = data.latest()
    assert await latest.text() == b"1"
    data.version, data.now = 2, 0.4
    assert await latest.text() == b"1"
    assert data.computed == 1


async def test_an_older_snapshot_is_shown_only_while_nothing_changed() -> None:
    data = Data()
    latest = data.latest()
    await latest.text()
    data.now = 3.0
    assert await latest.text() == b"1"
    assert data.computed == 1
    data.version = 2
    assert await latest.text() == b"2"
    assert data.computed == 2


async def test_with_no_staleness_every_scrape_shows_what_was_committed_before_it() -> None:
    data = Data()
    latest = data.latest(staleness=0.0)
    await latest.text()
    data.version = 2
    assert await latest.text() == b"2"


async def test_a_snapshot_expires_with_the_clock_and_after_a_rebuild() -> None:
    data = Data()
    latest = data.latest(max_age=10.0)
    await latest.text()
    data.now = 11.0
    await latest.text()
    assert data.computed == 2
    latest.forget()
    await latest.text()
    assert data.computed == 3


async def test_scrapes_waiting_together_share_one_computation() -> None:
    data = Data()
    data.release = asyncio.Event()
    latest = data.latest()
    waiting = [asyncio.create_task(latest.text()) for _ in range(3)]
    await asyncio.sleep(0)
    data.release.set()
    assert await asyncio.gather(*waiting) == [b"1", b"1", b"1"]
    assert data.computed == 1


async def test_a_scrape_never_takes_a_computation_that_began_before_it() -> None:
    data = Data()
    latest = data.latest(staleness=0.0)
    await latest.text()
    data.release = asyncio.Event()
    data.version, data.now = 2, 1.0
    first = asyncio.create_task(latest.text())  # begins computing version 2 at t=1
    for _ in range(2):
        await asyncio.sleep(0)
    data.version, data.now = 3, 2.0  # committed after that computation began
    second = asyncio.create_task(latest.text())
    await asyncio.sleep(0)
    data.release.set()
    assert await first == b"2"
    assert await second == b"3"


async def test_the_task_rests_as_long_as_its_last_snapshot_took() -> None:
    data = Data()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        data.version += 1  # something changed meanwhile
        data.takes = 2.0  # and snapshots got slow
        if len(slept) == 2:
            raise asyncio.CancelledError

    latest = data.latest(sleep=sleep)
    data.takes = 0.1
    with pytest.raises(asyncio.CancelledError):
        await latest.keep_current()
    assert slept == [pytest.approx(0.15), pytest.approx(2.0)]
    assert data.computed == 2


async def test_each_snapshot_is_computed_from_the_one_before_but_none_from_before_a_rebuild() -> (
    None
):
    data = Data()
    latest = data.latest(staleness=0)
    await latest.text()
    data.version = 2
    await latest.text()
    data.version = 3
    latest.forget()
    await latest.text()
    data.version, data.now = 4, 1.0
    await latest.text()
    assert data.previous == [None, 1, None, 3]


async def test_the_task_rests_as_long_as_its_snapshot_took_outside_the_families_it_read() -> None:
    """Each family rests as long as its own read took (Kpis.exposition, paced); the task
    rests as long as the rest of the snapshot took (version, roster, totals, rendering)."""
    data = Data()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        data.version += 1
        raise asyncio.CancelledError

    latest = data.latest(sleep=sleep)
    data.takes, data.longest_read = 2.0, 1.5
    with pytest.raises(asyncio.CancelledError):
        await latest.keep_current()
    assert slept == [pytest.approx(0.5)]
    assert data.paced == [True]


async def test_a_snapshot_that_kept_a_changed_family_is_taken_again_and_never_shown_whole() -> None:
    """The background task's snapshots are paced and may keep a family that changed: the
    next run takes another though nothing changed since; a scrape that must show everything
    committed before it (no staleness) never settles for one, in flight or done."""
    data = Data()
    data.deferring = True
    latest = data.latest(staleness=0.0)
    paced = await latest.refresh(paced=True)
    assert not paced.exposition.complete
    again = await latest.refresh(paced=True)  # nothing changed, but a family was kept
    assert data.computed == 2
    assert again is not paced
    assert await latest.text() == b"1"
    assert data.paced == [True, True, False]
    data.release = asyncio.Event()
    data.version, data.now = 2, 1.0
    background = asyncio.create_task(latest.refresh(paced=True))
    for _ in range(2):
        await asyncio.sleep(0)
    scrape = asyncio.create_task(latest.text())  # asked after the paced one began
    await asyncio.sleep(0)
    data.release.set()
    await background
    assert await scrape == b"2"
    assert data.paced == [True, True, False, True, False]
