"""Stopping cleanly on Python 3.11: a worker woken at the moment it is cancelled still ends,
and a stop ends even when a task does not."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from salesops_common.aio import stop_tasks, wait_event


async def _woken_worker(wake: asyncio.Event, rounds: list[int]) -> None:
    while True:  # the shape of the relay's and the processor's loops
        await wait_event(wake, 1.0)
        wake.clear()
        rounds.append(1)


async def test_a_cancellation_that_arrives_with_the_wake_up_is_not_lost() -> None:
    for _ in range(50):
        wake, rounds = asyncio.Event(), list[int]()
        task = asyncio.create_task(_woken_worker(wake, rounds))
        await asyncio.sleep(0)
        wake.set()  # woken and cancelled in the same loop iteration
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=1.0)
        assert done == {task}, "the worker went on after its cancellation"
        assert task.cancelled()
        assert rounds == []


async def test_wait_event_tells_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    cancellations = list[int]()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append(1)
                if len(cancellations) > 1:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    left = await stop_tasks([task], what="test", within=5.0, recancel_every=0.05)
    assert left == []
    assert task.cancelled()
    assert len(cancellations) == 2


async def test_a_task_that_never_stops_is_logged_with_its_stack_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf-worker")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="salesops_common.aio"):
        left = await stop_tasks([task], what="worker", within=0.2, recancel_every=0.05)
    assert left == [task]
    assert not task.done()
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert "worker task deaf-worker did not stop" in message
    assert re.search(r"test_aio\.py:\d+ deaf", message), message  # where it was, by frame
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=1.0)
    assert task.done()


async def test_a_task_that_ended_with_an_error_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="broken-worker")
    await asyncio.wait([task])
    with caplog.at_level(logging.ERROR, logger="salesops_common.aio"):
        assert await stop_tasks([task], what="worker") == []
    assert any("broken-worker ended with an error" in r.getMessage() for r in caplog.records)
