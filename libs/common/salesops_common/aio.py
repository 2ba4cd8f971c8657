"""asyncio helpers that stop cleanly on Python 3.11.

Python 3.11's ``asyncio.wait_for`` loses a cancellation that arrives in the same loop
iteration as the result it waits for (gh-86296, fixed in 3.12): the task goes on as if it had
not been cancelled. A worker loop that waits for a wake-up that way, and is woken at the
moment the service stops, runs on forever, and the stop waits for it forever. So nothing here
uses ``wait_for`` (ruff bans it), and ``stop_tasks`` cancels again what goes on after a
cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, within: float) -> bool:
    """Wait at most ``within`` seconds for the event; whether it was set."""
    try:
        async with asyncio.timeout(within):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def stop_tasks(
    tasks: Iterable[asyncio.Task[None]],
    *,
    what: str,
    within: float = 30.0,
    recancel_every: float = 2.5,
) -> list[asyncio.Task[None]]:
    """Cancel the tasks and wait until they end: a task still running ``recancel_every``
    seconds after a cancellation is cancelled again, which leaves time for a bounded cleanup
    (closing a connection) and gets past a lost cancellation. After ``within`` seconds the
    ones still running are logged with their stacks and left; they are returned."""
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(recancel_every, remaining))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error(
                "%s task %s ended with an error", what, task.get_name(), exc_info=task.exception()
            )
    left = sorted(pending, key=lambda task: task.get_name())
    for task in left:
        frames = "".join(
            f"\n  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
            for frame in task.get_stack()
        )
        log.error(
            "%s task %s did not stop within %.0f s; left running at:%s",
            what,
            task.get_name(),
            within,
            frames,
        )
    return left
