"""``python -m bench.fetch_wait``: how long a record takes from the producer's acknowledgement
to a consumer's ``getmany``, on the embedded Tansu broker, for several ``fetch_max_wait_ms``.

A diagnosis of one consumer hop: one record every 20 ms (acks=all, no linger), spread over
6 partitions, one consumer (its own group, from the end) per setting.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from salesops_cli.infra import EmbeddedBroker, free_port, remove_tree
from salesops_common.kafka import ensure_topics

TOPIC = "bench.fetch-wait"
PARTITIONS = 6


async def probe(bootstrap: str, wait_ms: int, records: int = 100, gap: float = 0.02) -> str:
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
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    took.sort()
    return (
        f"| {wait_ms} | {took[len(took) // 2]:.1f} | {took[int(len(took) * 0.9)]:.1f} | "
        f"{took[-1]:.1f} |"
    )


async def main(waits: list[int]) -> None:
    root = Path(tempfile.mkdtemp(prefix="salesops-fetch-wait-"))
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    broker.start()
    try:
        await ensure_topics(broker.bootstrap, [TOPIC], partitions=PARTITIONS)
        print("| fetch_max_wait_ms | p50 ms | p90 ms | max ms |\n|---|---|---|---|")
        for wait in waits:
            print(await probe(broker.bootstrap, wait), flush=True)
    finally:
        broker.stop()
        remove_tree(root)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [500, 100, 50, 10]))
