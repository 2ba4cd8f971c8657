"""A reader of topics from their end, without a consumer group: what the end-to-end
benchmarks use to see when their events were published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer


class EndReader:
    """Subscribes to ``topics`` from their end and runs :meth:`_read` in a task once every
    partition has its position; subclasses say what they keep of the records."""

    def __init__(
        self, bootstrap: str, topics: Sequence[str], *, fetch_max_wait_ms: int = 5
    ) -> None:
        self._topics = list(topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # The reader's own wait must not count in the latency measured.
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self, within: float = 60.0) -> None:
        """Return once every partition of every topic has its position (the end)."""
        consumer = self._consumer
        await consumer.start()
        consumer.subscribe(self._topics)
        deadline = time.monotonic() + within
        while True:
            await consumer.getmany(timeout_ms=100)
            parts = [consumer.partitions_for_topic(t) or set() for t in self._topics]
            assigned = consumer.assignment()
            if all(parts) and len(assigned) == sum(len(p) for p in parts):
                for tp in assigned:
                    await consumer.position(tp)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the reader of {self._topics} got no partitions")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()
