"""Test support: per-test isolation on the shared real PostgreSQL and broker, in-process
services with their real lifespan, and a topic reader."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import Connection

from salesops_common.envelope import Envelope

TOKEN = "test-token-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = TypeVar("T")


@dataclass
class Isolation:
    """Names that keep one test's data apart from every other's on shared servers."""

    database_url: str
    bootstrap: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def topic_prefix(self) -> str:
        return f"t{self.tag}."

    def database(self, service: str) -> str:
        return f"{service}_{self.tag}"

    def topic(self, logical: str) -> str:
        return self.topic_prefix + logical

    def env(self) -> dict[str, str]:
        env = {
            "SALESOPS_API_TOKEN": TOKEN,
            "SALESOPS_DATABASE_URL": self.database_url,
            "SALESOPS_KAFKA_BOOTSTRAP": self.bootstrap,
            "SALESOPS_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "SALESOPS_KAFKA_PARTITIONS": "3",
            # A scheduled forecast run in the middle of a test would add runs and events it
            # does not expect; the tests of scheduled runs turn them on.
            "SALESOPS_FORECAST_RUN_INTERVAL_SECONDS": "0",
        }
        for service in ("ingest", "routing", "metrics", "forecast"):
            env[f"SALESOPS_{service.upper()}_DATABASE"] = self.database(service)
        return env

    def settings_kwargs(self) -> dict[str, Any]:
        return {
            "api_token": TOKEN,
            "database_url": self.database_url,
            "kafka_bootstrap": self.bootstrap,
            "kafka_topic_prefix": self.topic_prefix,
            "kafka_partitions": 3,
        }


@asynccontextmanager
async def running(app: FastAPI, *, consumers: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app with its real lifespan (migrations, relay, consumers) and a client.

    ``consumers=False``: without its consumers, for tests that only use the service's API and
    consume nothing. They skip the seconds the broker takes to seat a consumer group member,
    at start and again at stop (a stop waits for a join in progress).
    """
    if not consumers:
        without_consumers(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


def without_consumers(app: FastAPI) -> FastAPI:
    """The service without its consumers (see ``running``)."""
    app.state.runtime.consumers.clear()
    return app


async def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool] | None = None,
    within: float = 30.0,
    settle: bool = False,
) -> list[ConsumerRecord[bytes, bytes]]:
    """A topic's records from the start, as they are on the broker (headers included)."""
    return await _read(bootstrap, topic, _record, until, within=within, settle=settle)


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Envelope]], bool] | None = None,
    within: float = 30.0,
    settle: bool = False,
) -> list[Envelope]:
    """Read a topic's events from the start until ``until`` holds (or fail after ``within``
    seconds); with no ``until``, everything the topic holds now.

    Partitions are assigned, not joined as a consumer group: no seconds lost waiting for the
    broker to seat a reader. ``settle``: once ``until`` holds, read on to the end of every
    partition as it is then, for assertions that something was *not* published (events of
    one relay batch land on their partitions a moment apart).
    """
    return await _read(bootstrap, topic, _envelope, until, within=within, settle=settle)


def _record(record: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    return record


def _envelope(record: ConsumerRecord[bytes, bytes]) -> Envelope:
    return Envelope.from_record(record.key, record.value, list(record.headers))


async def _read(
    bootstrap: str,
    topic: str,
    decode: Callable[[ConsumerRecord[bytes, bytes]], T],
    until: Callable[[list[T]], bool] | None,
    *,
    within: float,
    settle: bool,
) -> list[T]:
    deadline = time.monotonic() + within
    consumer = await _reader(bootstrap, topic, deadline)
    seen: list[T] = []

    async def fetch() -> None:
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            seen.extend(decode(r) for r in records)

    def timed_out() -> AssertionError:
        return AssertionError(f"timed out on {topic}; got {len(seen)} records: {seen!r:.2000}")

    try:
        if until is not None:
            while not until(seen):
                if time.monotonic() > deadline:
                    raise timed_out()
                await fetch()
        if until is None or settle:
            # To the end of every partition, until the ends stop moving: records produced
            # together land on their partitions a moment apart.
            partitions = sorted(consumer.assignment())
            previous, end = None, await consumer.end_offsets(partitions)
            while end != previous:
                while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                    if time.monotonic() > deadline:
                        raise timed_out()
                    await fetch()
                previous, end = end, await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return seen


async def _reader(bootstrap: str, topic: str, deadline: float) -> AIOKafkaConsumer:
    """A consumer assigned every partition of ``topic``, at the beginning of each."""
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()  # fetches the metadata of every topic
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            return consumer
        await consumer.stop()
        if time.monotonic() > deadline:
            raise AssertionError(f"no partitions for {topic}")
        await asyncio.sleep(0.1)


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, within: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll ``probe`` until it returns a truthy value; fail with the last value otherwise."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


def api_event(
    type_name: str,
    source_id: str,
    data: dict[str, Any] | None = None,
    *,
    source_event_id: str | None = None,
    occurred_at: str = "2026-11-01T10:00:00+00:00",
    source: str = "api",
    tenant: str = "default",
) -> dict[str, Any]:
    return {
        "type": type_name,
        "source": source,
        "tenant": tenant,
        "source_event_id": source_event_id or f"{type_name}:{source_id}:{uuid.uuid4().hex[:6]}",
        "occurred_at": occurred_at,
        "data": {"source_id": source_id, **(data or {})},
    }


async def publish(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Put canonical events on a topic, as an upstream service's relay would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=e.value(), key=e.record_key, headers=e.headers())
            for e in envelopes
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def downgrade_to(sync_conn: Connection, script_location: Path, revision: str) -> None:
    """Take a service's schema back to ``revision`` (for upgrade tests; run with
    ``AsyncConnection.run_sync``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    script = ScriptDirectory.from_config(cfg)

    def downgrade(rev: object, context: object) -> object:
        return script._downgrade_revs(revision, rev)  # type: ignore[arg-type]

    with EnvironmentContext(cfg, script, fn=downgrade, destination_rev=revision) as env:
        env.configure(connection=sync_conn, transactional_ddl=True)
        with env.begin_transaction():
            env.run_migrations()
