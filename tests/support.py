"""Test support: per-test isolation on the shared real PostgreSQL and broker, in-process
services with their real lifespan, and a topic reader."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from salesops_common.envelope import Envelope

TOKEN = "test-token-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app with its real lifespan (migrations, relay, consumers) and a client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Envelope]], bool],
    within: float = 30.0,
) -> list[Envelope]:
    """Read a topic from the start until ``until`` holds (or fail after ``within`` seconds)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Envelope] = []
    deadline = time.monotonic() + within
    try:
        while not until(seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {topic}; got {len(seen)} events")
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    seen.append(Envelope.from_record(r.key, r.value, list(r.headers)))
    finally:
        await consumer.stop()
    return seen


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
