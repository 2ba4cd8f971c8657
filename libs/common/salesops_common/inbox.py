"""Idempotent consumers: apply a handler and record the event id in one transaction,
commit offsets only after it, skip duplicates, dead-letter poison records."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.aio import wait_event
from salesops_common.db import UnitOfWork
from salesops_common.envelope import Envelope, EnvelopeError, deterministic_event_id
from salesops_common.events import EventData, dlq_topic
from salesops_common.kafka import Topics
from salesops_common.observability import ServiceMetrics, event_id
from salesops_common.outbox import add_to_outbox

log = logging.getLogger(__name__)


@dataclass
class HandlerContext:
    """What a handler may touch: the transaction, the outbox (through ``emit``), state that
    lives as long as the transaction, and actions to run just before or after it commits."""

    session: AsyncSession
    topics: Topics
    source: str
    emitted: list[Envelope] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    _before_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, type_name: str, data: EventData, *, id: UUID | None = None) -> Envelope:
        envelope = Envelope.of(type_name, data, source=self.source, id=id)
        self.emitted.append(envelope)
        return envelope

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` in the transaction once every handler of the batch has run
        (e.g. one write for a whole batch instead of one per event)."""
        self._before_commit.append(action)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` only once the transaction committed: a batch that fails is
        re-applied, so anything done inside a rolled-back transaction would happen twice."""
        self._after_commit.append(action)

    async def flush(self) -> None:
        for action in self._before_commit:
            await action()
        self._before_commit.clear()
        await add_to_outbox(self.session, self.emitted, topics=self.topics)
        self.emitted.clear()

    def committed(self) -> None:
        for action in self._after_commit:
            action()
        self._after_commit.clear()


Handler = Callable[[HandlerContext, Envelope], Awaitable[None]]

_CLAIM = text(
    """
    INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, kafka_offset,
                       status, reason)
    SELECT :consumer, * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]),
        CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]),
        CAST(:statuses AS text[]), CAST(:reasons AS text[]))
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
    """
)

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure failures are retried forever; only the rest can make a record poison."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _TRANSIENT):
            return True
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sa_exc.InterfaceError | sa_exc.OperationalError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts the group's rebalances as this member sees them (each revocation and each
    assignment), so that a batch can tell whether one happened while it was applied, and
    keeps the partitions the member holds now."""

    def __init__(self) -> None:
        self.count = 0
        self.assigned: frozenset[TopicPartition] = frozenset()

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.count += 1
        self.assigned = frozenset()

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.count += 1
        self.assigned = frozenset(assigned)


@dataclass(frozen=True)
class Item:
    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope | None
    error: str | None


Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Fetched:
    """Records read ahead of the batch being applied, in the order read, at most about
    ``limit`` of them (the reader waits for room); a reader's failure is raised to the
    taker. Each read keeps the group generation it was made in (the count of rebalances the
    member had seen), and a take tells the oldest of those it took: ``taken_generation``."""

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[tuple[int, Records]] = deque()
        self._count = 0
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.taken_generation = 0

    def put(self, batches: Records, *, generation: int = 0) -> None:
        if not batches:
            return
        self._chunks.append((generation, batches))
        self._count += _size(batches)
        self._ready.set()
        if self._count >= self._limit:
            self._room.clear()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._ready.set()

    @property
    def count(self) -> int:
        """Records read and not taken yet."""
        return self._count

    async def room(self) -> None:
        await self._room.wait()

    async def take(self, max_records: int, *, within: float) -> Records:
        """What was read so far, whole reads up to ``max_records`` records (at least one
        read), each partition's records in offset order; waits up to ``within`` seconds
        for a first read. Empty if none came."""
        if not self._chunks and self._error is None:
            await wait_event(self._ready, within)
        if self._error is not None:
            raise self._error
        taken: Records = {}
        count = 0
        generations: list[int] = []
        while self._chunks and (not count or count + _size(self._chunks[0][1]) <= max_records):
            generation, chunk = self._chunks.popleft()
            generations.append(generation)
            count += _size(chunk)
            for tp, records in chunk.items():
                taken.setdefault(tp, []).extend(records)
        self.taken_generation = min(generations, default=self.taken_generation)
        self._count -= count
        if not self._chunks:
            self._ready.clear()
        if self._count < self._limit:
            self._room.set()
        return taken


def _size(batches: Records) -> int:
    return sum(len(records) for records in batches.values())


class ConsumerRunner:
    """Runs one consumer group member: the handlers registry decides what is applied."""

    def __init__(
        self,
        *,
        name: str,
        topics: Topics,
        subscribe: Sequence[str],
        bootstrap: str,
        group_id: str,
        uow: UnitOfWork,
        handlers: Mapping[str, Handler],
        metrics: ServiceMetrics,
        source: str,
        max_attempts: int = 3,
        max_records: int = 500,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._topics = topics
        self._subscribe = [topics.physical(t) for t in subscribe]
        self._bootstrap = bootstrap
        self._group_id = topics.prefix + group_id
        self._uow = uow
        self._handlers = handlers
        self._metrics = metrics
        self._source = source
        self._max_attempts = max_attempts
        self._max_records = max_records
        self._options = dict(consumer_options or {})
        self._consumer: AIOKafkaConsumer | None = None
        self.rebalances = Rebalances()
        self._fetched: Fetched | None = None
        self._stopping = asyncio.Event()
        # Each topic's dead-letter series exists from the first scrape, at 0: a series that
        # first appears at 1 has no increase() in Prometheus, and the alert on dead-letter
        # growth would miss the first poison record of a topic (and of a restarted copy).
        for topic in subscribe:
            metrics.dlq_events.labels(topic)

    async def run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._consume()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a consumer must outlive broker outages
                log.warning("consumer %s failed: %r; restarting in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned(self) -> bool:
        """Whether this member holds partitions now (the group's last assignment to it)."""
        return bool(self.rebalances.assigned)

    @property
    def read_ahead(self) -> int:
        """Records read from the broker and not yet taken into a batch."""
        return self._fetched.count if self._fetched is not None else 0

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._max_records,
            **self._options,
        )
        consumer.subscribe(self._subscribe, listener=self.rebalances)
        await consumer.start()
        self._consumer = consumer
        fetched = self._fetched = Fetched(limit=self._max_records)
        reader = asyncio.create_task(self._read(consumer, fetched), name=f"{self.name}-reader")
        # A batch's offsets are committed while the next batch is applied (the broker's round
        # trip is off the path of the records waiting); one commit at a time, in order.
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                batches = await fetched.take(self._max_records, within=0.25)
                read_in = fetched.taken_generation
                # A partition taken from this member since its records were read is read
                # again by its new owner from the committed offset: drop them here.
                assignment = consumer.assignment()
                batches = {tp: records for tp, records in batches.items() if tp in assignment}
                if not batches:
                    continue
                # Every partition's records in one transaction: per key, order holds (a key
                # lives in one partition); across keys none is promised.
                await self._process([r for records in batches.values() for r in records])
                if committing is not None:
                    await committing
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                committing = asyncio.create_task(self._commit(consumer, offsets, read_in))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if committing is not None:
                try:
                    await committing  # the last batch's offsets, before leaving the group
                except Exception as exc:  # noqa: BLE001 - its records' effects are in the inbox
                    log.info("consumer %s: last offset commit failed: %r", self.name, exc)
            self._consumer = self._fetched = None
            await consumer.stop()
            self.rebalances.assigned = frozenset()  # a stopped member holds nothing

    async def _read(self, consumer: AIOKafkaConsumer, fetched: Fetched) -> None:
        """Keep reading while a batch is applied. aiokafka's fetcher sends no fetch to a
        broker while any partition's records from it wait to be taken, so a consumer that
        took records only between batches got, after each batch, what one fetch early in
        it had brought, and the rest one fetch and one batch later."""
        try:
            while True:
                await fetched.room()
                generation = self.rebalances.count
                batches = await consumer.getmany(timeout_ms=250, max_records=self._max_records)
                fetched.put(batches, generation=generation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - raised where the batches are taken
            fetched.fail(exc)

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int], read_in: int
    ) -> None:
        if self.rebalances.count != read_in:
            # The group rebalanced since these records were read. Their offsets may no
            # longer describe the log: after the broker lost its topics (the dev broker
            # restarted empty), the member rejoins under a new generation and a commit would
            # pass, pointing past records of the new log that no one has read, which the
            # next owner of the partition would skip. Not committing costs at most a
            # re-read, which the inbox drops.
            log.info(
                "consumer %s: the group rebalanced since the batch was read; its offsets are "
                "not committed",
                self.name,
            )
            return
        try:
            await consumer.commit(dict(offsets))
        except (CommitFailedError, KafkaError) as exc:
            # A partition moved to another member; it re-reads and its inbox skips these.
            log.info("offset commit for %s skipped after rebalance: %r", list(offsets), exc)

    async def _process(self, records: Sequence[ConsumerRecord]) -> None:
        started = time.perf_counter()
        items = [self._decode(r) for r in records]
        await self._retry_transient(lambda: self._apply_batch(items))
        self._metrics.consumer_processing.observe(time.perf_counter() - started)

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Item:
        try:
            envelope = Envelope.from_record(record.key, record.value, list(record.headers))
            return Item(record, envelope, None)
        except EnvelopeError as exc:
            return Item(record, None, f"undecodable: {exc}")

    async def _retry_transient(self, attempt: Callable[[], Awaitable[None]]) -> None:
        delay = 0.2
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                if not is_transient(exc) or self._stopping.is_set():
                    raise
                log.warning("consumer %s: transient failure %r; retrying", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _apply_batch(self, items: Sequence[Item]) -> None:
        """All records in one transaction; on a handler failure, one transaction per record."""
        good = [i for i in items if i.envelope is not None]
        try:
            async with self._uow() as session:
                outcomes, ctx = await self._apply(session, good)
            ctx.committed()
            self._observe(good, outcomes)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.info("consumer %s: batch failed (%r); applying one by one", self.name, exc)
            for item in good:
                await self._apply_one(item)
        for item in items:
            if item.envelope is None:
                await self._dead_letter(item, item.error or "undecodable")

    async def _apply_one(self, item: Item) -> None:
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with self._uow() as session:
                    outcomes, ctx = await self._apply(session, [item])
                ctx.committed()
                self._observe([item], outcomes)
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                reason = f"{type(exc).__name__}: {exc}"[:1000]
                log.warning("consumer %s: attempt %d failed: %s", self.name, attempt, reason)
                await asyncio.sleep(0.05 * attempt)
        await self._dead_letter(item, reason)

    async def _apply(
        self, session: AsyncSession, items: Sequence[Item]
    ) -> tuple[list[tuple[str, str]], HandlerContext]:
        """Apply new events; returns (topic, outcome) per item for the metrics."""
        handled = [i for i in items if i.envelope and i.envelope.type in self._handlers]
        claimed = await self._claim(session, handled, status="applied", reason=None)
        ctx = HandlerContext(session=session, topics=self._topics, source=self._source)
        outcomes: list[tuple[str, str]] = []
        for item in items:
            assert item.envelope is not None
            topic = self._topics.logical(item.record.topic)
            if item.envelope.type not in self._handlers:
                outcomes.append((topic, "ignored"))
                continue
            if item.envelope.id not in claimed:
                outcomes.append((topic, "duplicate"))
                continue
            claimed.discard(item.envelope.id)  # a second copy in the same batch is a duplicate
            token = event_id.set(str(item.envelope.id))
            try:
                await self._handlers[item.envelope.type](ctx, item.envelope)
            finally:
                event_id.reset(token)
            outcomes.append((topic, "applied"))
        await ctx.flush()
        return outcomes, ctx

    def _observe(self, items: Sequence[Item], outcomes: Sequence[tuple[str, str]]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for key in outcomes:
            counts[key] = counts.get(key, 0) + 1
        for (topic, outcome), count in counts.items():
            self._metrics.consumer_events.labels(topic, outcome).inc(count)
        now = time.time()
        newest = 0.0
        for item in items:
            published = item.record.timestamp / 1000
            newest = max(newest, published)
            self._metrics.pipeline_lag.observe(max(0.0, now - published))
        if newest:
            self._metrics.last_applied.set(newest)

    async def _claim(
        self, session: AsyncSession, items: Iterable[Item], *, status: str, reason: str | None
    ) -> set[UUID]:
        rows = [i for i in items if i.envelope is not None]
        if not rows:
            return set()
        result = await session.execute(
            _CLAIM,
            {
                "consumer": self.name,
                "ids": [str(i.envelope.id) for i in rows if i.envelope],
                "types": [i.envelope.type for i in rows if i.envelope],
                "topics": [i.record.topic for i in rows],
                "partitions": [i.record.partition for i in rows],
                "offsets": [i.record.offset for i in rows],
                "statuses": [status] * len(rows),
                "reasons": [reason] * len(rows),
            },
        )
        return {UUID(str(r[0])) for r in result}

    async def _dead_letter(self, item: Item, reason: str) -> None:
        """Record the poison record as handled and stage it for ``<topic>.dlq``, atomically."""
        record = item.record
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        envelope = item.envelope or Envelope(
            type="unknown",
            source="unknown",
            subject="",
            data={"raw": (record.value or b"")[:65536].decode("utf-8", "replace")},
            # Named by where the record lies, so that every consumer that cannot read it (each
            # service has its own) dead-letters it under the same id: it counts once.
            id=deterministic_event_id("dead-letter", origin),
            time=datetime.fromtimestamp(max(record.timestamp, 0) / 1000, UTC),
        )
        extra = [
            ("x-dlq-reason", reason.encode()[:4096]),
            ("x-dlq-consumer", self.name.encode()),
            ("x-dlq-origin", origin.encode()),
        ]
        dlq = dlq_topic(record.topic)

        async def write() -> None:
            async with self._uow() as session:
                if item.envelope is not None:
                    claimed = await self._claim(
                        session, [item], status="dead_lettered", reason=reason
                    )
                    if not claimed:
                        return
                await add_to_outbox(
                    session,
                    [envelope],
                    topics=self._topics,
                    topic_override=dlq,
                    extra_headers=extra,
                )

        await self._retry_transient(write)
        log.error("consumer %s: dead-lettered %s to %s: %s", self.name, envelope.id, dlq, reason)
        self._metrics.dlq_events.labels(self._topics.logical(record.topic)).inc()
        self._metrics.consumer_events.labels(
            self._topics.logical(record.topic), "dead_lettered"
        ).inc()
