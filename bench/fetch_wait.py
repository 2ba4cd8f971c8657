"""``python -m bench.fetch_wait``: how long a record takes from the producer's acknowledgement
to a consumer's ``getmany``, on the embedded Tansu broker, for several ``fetch_max_wait_ms``.

A diagnosis of one consumer hop: one record every 20 ms (acks=all, no linger), spread over
6 partitions, one consumer (its own group, from the end) per setting. Then what the setting
costs when nothing arrives: the CPU of this process (the consumer) and of the broker while
the consumer polls an idle topic for ``IDLE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.cpu import tree_cpu
from salesops_cli.infra import EmbeddedBroker, free_port, remove_tree
from salesops_common.kafka import ensure_topics

TOPIC = "bench.fetch-wait"
PARTITIONS = 6
IDLE_SECONDS = 5.0


async def idle_cost(consumer: AIOKafkaConsumer, broker_pid: int) -> tuple[float, float]:
    """CPU shares of one core (consumer, broker) while the consumer polls with no records."""
    mine, theirs, start = tree_cpu(os.getpid()), tree_cpu(broker_pid), time.perf_counter()
    while time.perf_counter() - start < IDLE_SECONDS:
        await consumer.getmany(timeout_ms=250)
    wall = time.perf_counter() - start
    return (tree_cpu(os.getpid()) - mine) / wall, (tree_cpu(broker_pid) - theirs) / wall


async def probe(
    bootstrap: str, wait_ms: int, broker_pid: int, records: int = 100, gap: float = 0.02
) -> str:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"fetch-wait-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)
        sent: dict[int, float] = {}
        took: list[float] = []

        async def read() -> None:
            while len(took) < records:
                batches = await consumer.getmany(timeout_ms=250)
                now = time.perf_counter()
                for batch in batches.values():
                    took.extend((now - sent[int(r.value or b"0")]) * 1000 for r in batch)

        reader = asyncio.create_task(read())
        for n in range(records):
            await producer.send_and_wait(TOPIC, str(n).encode(), partition=n % PARTITIONS)
            sent[n] = time.perf_counter()
            await asyncio.sleep(gap)
        async with asyncio.timeout(30):
            await reader
        consumer_cpu, broker_cpu = await idle_cost(consumer, broker_pid)
    finally:
        await producer.stop()
        await consumer.stop()
    took.sort()
    return (
        f"| {wait_ms} | {took[len(took) // 2]:.1f} | {took[int(len(took) * 0.9)]:.1f} | "
        f"{took[-1]:.1f} | {consumer_cpu:.1%} | {broker_cpu:.1%} |"
    )


async def main(waits: list[int]) -> None:
    root = Path(tempfile.mkdtemp(prefix="salesops-fetch-wait-"))
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    broker.start()
    try:
        await ensure_topics(broker.bootstrap, [TOPIC], partitions=PARTITIONS)
        assert broker.process is not None
        print(
            "| fetch_max_wait_ms | p50 ms | p90 ms | max ms | idle: consumer CPU "
            "| idle: broker CPU |\n|---|---|---|---|---|---|"
        )
        for wait in waits:
            print(await probe(broker.bootstrap, wait, broker.process.pid), flush=True)
    finally:
        broker.stop()
        remove_tree(root)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [500, 100, 50, 10]))
