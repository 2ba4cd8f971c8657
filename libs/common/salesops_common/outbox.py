"""Transactional outbox: events are written with the state change, published by a relay.

Only one relay per service database publishes at a time (a PostgreSQL advisory lock), so
rows go out in commit-id order; any number of service copies may run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common import writes
from salesops_common.aio import wait_event
from salesops_common.db import driver_connection
from salesops_common.envelope import Envelope
from salesops_common.kafka import BrokerLossWatch, Topics
from salesops_common.messaging_schema import OUTBOX_CHANNEL
from salesops_common.observability import ServiceMetrics
from salesops_common.writes import Statement

log = logging.getLogger(__name__)

RELAY_LOCK_ID = 0x0B7B0C5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SELECT_UNSENT = (
    "SELECT id, topic, key, headers, payload, created_at FROM outbox WHERE sent_at IS NULL"
)
_UNSENT = _SELECT_UNSENT + " ORDER BY id LIMIT $1"
_MARK_SENT = "UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY($1::bigint[])"
# The rows just published marked sent and the next unsent ones read, in one round trip: the
# statement's SELECT sees the snapshot from before its UPDATE, so it leaves those rows out.
_MARK_SENT_AND_NEXT = (
    f"WITH sent AS ({_MARK_SENT}) {_SELECT_UNSENT} "
    "AND NOT id = ANY($1::bigint[]) ORDER BY id LIMIT $2"
)
_INSERT = """
    INSERT INTO outbox (event_id, topic, key, headers, payload)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[])
"""


def _row(
    envelope: Envelope, topic: str, extra_headers: Sequence[tuple[str, bytes]]
) -> tuple[UUID, str, bytes, bytes, bytes]:
    headers = envelope.attributes()
    headers.update((k, v.decode()) for k, v in extra_headers)
    return (
        envelope.id,
        topic,
        envelope.record_key,
        orjson.dumps(headers),
        envelope.value(),
    )


async def add_to_outbox(
    session: AsyncSession | asyncpg.Connection,
    envelopes: Sequence[Envelope],
    *,
    topics: Topics,
    topic_override: str | None = None,
    extra_headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Stage events in the caller's transaction; they are published after it commits."""
    staged = outbox_writes(
        envelopes, topics=topics, topic_override=topic_override, extra_headers=extra_headers
    )
    if not staged:
        return
    conn = session if isinstance(session, asyncpg.Connection) else await driver_connection(session)
    await writes.execute(conn, staged)


def outbox_writes(
    envelopes: Sequence[Envelope],
    *,
    topics: Topics,
    topic_override: str | None = None,
    extra_headers: Sequence[tuple[str, bytes]] = (),
) -> list[Statement]:
    """:func:`add_to_outbox` as a write to send with others (:func:`writes.execute`)."""
    if not envelopes:
        return []
    rows = [_row(e, topic_override or topics.physical(e.topic), extra_headers) for e in envelopes]
    return [(_INSERT, [list(col) for col in zip(*rows, strict=True)])]


ProducerFactory = Callable[[], AIOKafkaProducer]


class OutboxRelay:
    """Publishes unsent outbox rows (acks=all), marks them sent, prunes old sent rows."""

    def __init__(
        self,
        *,
        dsn: str,
        producer_factory: ProducerFactory,
        metrics: ServiceMetrics,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=7),
        broker_loss: BrokerLossWatch | None = None,
    ) -> None:
        self._dsn = dsn
        self._producer_factory = producer_factory
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._wake = asyncio.Event()
        self._partitioner = DefaultPartitioner()  # the same key -> partition as send()
        self._producer: AIOKafkaProducer | None = None
        self._last_prune = 0.0
        self._broker_loss = broker_loss
        self._last_broker_check = 0.0
        self.is_leader = False

    async def run(self) -> None:
        """Run until cancelled, surviving database and broker outages with backoff."""
        delay = 0.2
        while True:
            try:
                await self._run_once()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay must outlive every failure
                log.warning("outbox relay error: %r; retrying in %.1fs", exc, delay)
                await self._drop_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self.is_leader = False
                # Only the leader measures the backlog; a former leader must not keep
                # reporting its last reading.
                self._metrics.outbox_backlog.set(0)

    async def stop(self) -> None:
        await self._drop_producer()

    async def _run_once(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await self._become_leader(conn)
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            self._last_broker_check = 0.0  # a new leader checks at once
            rows: Sequence[asyncpg.Record] = []
            while True:
                if await self._recover_broker_loss(conn):
                    rows = []  # older rows are unsent again: read in order from the start
                rows = await self._publish_batch(conn, rows)
                await self._housekeeping(conn)
                if not rows:
                    await self._wait_for_work()
        finally:
            await conn.close(timeout=2)

    async def _become_leader(self, conn: asyncpg.Connection) -> None:
        """Wait for the relay lock: while another copy holds it, that copy publishes."""
        while True:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID):
                self.is_leader = True
                return
            await asyncio.sleep(self._poll_interval)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self) -> None:
        await wait_event(self._wake, self._poll_interval)
        self._wake.clear()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            await producer.start()
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - a broken producer is replaced, not repaired
                log.debug("error stopping producer", exc_info=True)

    async def _publish_batch(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record] = ()
    ) -> Sequence[asyncpg.Record]:
        """Publish ``rows`` (else the oldest unsent rows) and mark them sent; the next unsent
        rows when more are known to wait (a commit notified meanwhile, or a full batch), read
        in the statement that marks these (no rows: wait for a notification)."""
        if not rows:
            rows = await conn.fetch(_UNSENT, self._batch_size)
        if not rows:
            return []
        producer = await self._ensure_producer()
        await asyncio.gather(*await self._send_batches(producer, rows))
        ids = [r["id"] for r in rows]
        self._observe(rows)
        if self._wake.is_set() or len(rows) >= self._batch_size:
            # Cleared before the read: a commit notified during it wakes the next round.
            self._wake.clear()
            following: Sequence[asyncpg.Record] = await conn.fetch(
                _MARK_SENT_AND_NEXT, ids, self._batch_size
            )
            return following
        await conn.execute(_MARK_SENT, ids)
        return []

    async def _send_batches(
        self, producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record]
    ) -> list[asyncio.Future[object]]:
        """One record batch per partition rather than a future per message: the relay's
        per-event cost is most of its cost. Rows keep their outbox order per partition."""
        by_partition: dict[tuple[str, int], list[asyncpg.Record]] = {}
        partitions: dict[str, list[int]] = {}
        for row in rows:
            topic = row["topic"]
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            part = self._partitioner(row["key"], partitions[topic], partitions[topic])
            by_partition.setdefault((topic, part), []).append(row)
        futures = []
        for (topic, part), group in by_partition.items():
            batch = producer.create_batch()
            for row in group:
                headers = [(k, v.encode()) for k, v in orjson.loads(row["headers"]).items()]
                fields = {
                    "timestamp": None,
                    "key": row["key"],
                    "value": row["payload"],
                    "headers": headers,
                }
                if batch.append(**fields) is None:  # full: send it and start another
                    futures.append(await producer.send_batch(batch, topic, partition=part))
                    batch = producer.create_batch()
                    batch.append(**fields)
            futures.append(await producer.send_batch(batch, topic, partition=part))
        return futures

    def _observe(self, rows: Sequence[asyncpg.Record]) -> None:
        now = time.time()
        for row in rows:
            created: datetime = row["created_at"]
            self._metrics.outbox_latency.observe(max(0.0, now - created.timestamp()))
            self._metrics.outbox_published.labels(row["topic"]).inc()

    async def _recover_broker_loss(self, conn: asyncpg.Connection) -> bool:
        """When the broker has lost the service's marker topic, it lost what the relay
        published to it: create the topics again, hand the outbox's whole retained history
        back to the relay (consumers' inboxes drop what they had applied) and set the marker.
        A crash half-way leaves the marker unset, so the next leader does it all again."""
        watch = self._broker_loss
        now = time.monotonic()
        if watch is None or now - self._last_broker_check < watch.interval:
            return False
        self._last_broker_check = now
        if not await watch.lost():
            return False
        await watch.recreate_topics()
        count = await republish_since(conn, _EPOCH)
        await watch.mark()
        if count:
            log.warning("broker lost its topics: re-publishing %d outbox events", count)
        self._metrics.outbox_republished.inc(count)
        return True

    async def _housekeeping(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now - self._last_prune < 5:
            return
        self._last_prune = now
        backlog = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        self._metrics.outbox_backlog.set(backlog)
        await conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < "
            "clock_timestamp() - $1::interval AND sent_at IS NOT NULL LIMIT 10000)",
            self._retention,
        )


async def republish_since(conn: asyncpg.Connection, since: datetime) -> int:
    """Mark sent rows created since ``since`` unsent, so the relay publishes them again."""
    status: str = await conn.execute(
        "UPDATE outbox SET sent_at = NULL WHERE created_at >= $1 AND sent_at IS NOT NULL", since
    )
    return int(status.split()[-1])
