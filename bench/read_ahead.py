"""``python -m bench.read_ahead``: how long a record waits, on the embedded Tansu broker, from
its producer's timestamp until the consumer runner takes it into a batch, when applying a
batch takes ``--batch-ms`` (a sleep standing for the transaction; routing's batches took
20-30 ms on a quiet machine, more under load).

A diagnosis of the consumer loop alone (``salesops_common.inbox.ConsumerRunner``, its
``_process`` replaced by the sleep; offsets committed as usual): one record every
``1/rate`` s over 6 partitions (acks=all, no linger), ``fetch_max_wait_ms`` 10 as routing's.
Waiting on sleeps, not on the CPU, it moves less with the machine's other load than the
end-to-end benchmark. Compare the runner before a change by putting the older
``libs/common`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from salesops_cli.infra import EmbeddedBroker, free_port, remove_tree
from salesops_common.inbox import ConsumerRunner
from salesops_common.kafka import Topics, ensure_topics
from salesops_common.observability import ServiceMetrics

TOPIC = "bench.read-ahead"  # one topic per measurement, named after this
PARTITIONS = 6


class SleepingRunner(ConsumerRunner):
    """Applies a batch by sleeping; records when each record was taken."""

    def __init__(self, batch_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_seconds = batch_seconds
        self.waited: list[float] = []  # ms, producer's timestamp -> taken into a batch
        self.batches: list[int] = []

    async def _process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        now = time.time()
        self.waited.extend((now - r.timestamp / 1000) * 1000 for r in records)
        self.batches.append(len(records))
        await asyncio.sleep(self.batch_seconds)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(bootstrap: str, *, rate: float, seconds: float, batch_ms: float) -> str:
    topic = f"{TOPIC}-{uuid.uuid4().hex[:8]}"  # empty: the runner reads from the earliest
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    runner = SleepingRunner(
        batch_ms / 1000,
        name="bench.read-ahead",
        topics=Topics(),
        subscribe=[topic],
        bootstrap=bootstrap,
        group_id=f"read-ahead-{uuid.uuid4().hex[:8]}",
        uow=None,  # type: ignore[arg-type]  # _process never opens a transaction here
        handlers={},
        metrics=ServiceMetrics("bench"),
        source="/bench",
        consumer_options={"fetch_max_wait_ms": 10},
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    task = asyncio.create_task(runner.run())
    try:
        while not runner.assigned:  # noqa: ASYNC110 - the runner's task sets it
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # positions settled
        start = time.perf_counter()
        count = int(rate * seconds)
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topic, b"x", partition=n % PARTITIONS)
        deadline = time.perf_counter() + 30
        while len(runner.waited) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        async with asyncio.timeout(30):
            await task
        await producer.stop()
    waited, batches = runner.waited, runner.batches
    return (
        f"| {rate:g} | {batch_ms:g} | {len(waited):,} of {count:,} | "
        f"{_pct(waited, 0.5):.1f} | {_pct(waited, 0.9):.1f} | {_pct(waited, 0.99):.1f} | "
        f"{max(waited):.1f} | {sum(batches) / len(batches):.1f} |"
    )


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="salesops-read-ahead-"))
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    broker.start()
    try:
        print(
            "| records/s | batch ms | taken | p50 ms | p90 ms | p99 ms | max ms | mean batch |\n"
            "|---|---|---|---|---|---|---|---|"
        )
        for batch_ms in args.batch_ms:
            line = await measure(
                broker.bootstrap, rate=args.rate, seconds=args.seconds, batch_ms=batch_ms
            )
            print(line, flush=True)
    finally:
        broker.stop()
        remove_tree(root)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.read_ahead", description=__doc__)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch-ms", type=float, nargs="+", default=[10.0, 30.0, 60.0])
    asyncio.run(main(p.parse_args()))
