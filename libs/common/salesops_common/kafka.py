"""Kafka plumbing: topic names with the deployment prefix, topic creation, producers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from salesops_common.events import ALL_TOPICS, dlq_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    """Maps logical topic names to the broker's (with the deployment's prefix)."""

    prefix: str = ""

    def physical(self, logical: str) -> str:
        return self.prefix + logical

    def logical(self, physical: str) -> str:
        return physical[len(self.prefix) :] if physical.startswith(self.prefix) else physical

    def every(self) -> list[str]:
        return [self.physical(t) for base in ALL_TOPICS for t in (base, dlq_topic(base))]


async def ensure_topics(bootstrap: str, topics: list[str], *, partitions: int) -> None:
    """Create topics explicitly, before any client could auto-create them with defaults."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        if not wanted:
            return
        new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


async def topic_exists(bootstrap: str, topic: str) -> bool:
    """Whether the broker knows ``topic``; asks for every topic's name, so that the question
    itself creates nothing on a broker that auto-creates the topics it is asked about."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return topic in set(await admin.list_topics())
    finally:
        await admin.close()


@dataclass(frozen=True)
class BrokerLossWatch:
    """What a relay needs to notice that the broker lost its topics (the dev broker keeps
    nothing across a restart) and to recover: the service's topics to create again before
    clients auto-create them, and a marker topic of the service's own. The marker is created
    once the service's outbox history has been handed to the relay again: a broker without
    it has not seen that history (a new broker, or one restarted empty)."""

    bootstrap: str
    topics: list[str]
    marker: str
    partitions: int
    interval: float = 2.0

    async def lost(self) -> bool:
        return not await topic_exists(self.bootstrap, self.marker)

    async def recreate_topics(self) -> None:
        await ensure_topics(self.bootstrap, self.topics, partitions=self.partitions)

    async def mark(self) -> None:
        await ensure_topics(self.bootstrap, [self.marker], partitions=1)


async def wait_for_broker(bootstrap: str, topics: list[str], *, partitions: int) -> None:
    delay = 0.2
    while True:
        try:
            await ensure_topics(bootstrap, topics, partitions=partitions)
            return
        except (KafkaError, OSError) as exc:
            log.warning("broker not reachable yet: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def new_producer(bootstrap: str, *, idempotence: bool = False, **extra: Any) -> AIOKafkaProducer:
    # acks=all always; idempotence stays off by default: the dev broker cannot InitProducerId.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotence,
        linger_ms=2,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        request_timeout_ms=15_000,
        **extra,
    )


async def broker_reachable(bootstrap: str, *, connect_within: float = 1.0) -> bool:
    """A TCP connect to any bootstrap server: cheap enough for every /readyz."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(connect_within):
                _, writer = await asyncio.open_connection(host, int(port))
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False
