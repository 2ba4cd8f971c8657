"""Outbox relay and inbox consumer on the real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from salesops_common.envelope import Envelope
from salesops_common.events import Lead
from salesops_common.inbox import HandlerContext
from salesops_common.kafka import new_producer
from salesops_common.outbox import OutboxRelay, add_to_outbox
from salesops_common.runtime import ServiceRuntime
from salesops_common.settings import CommonSettings
from tests.common.integration.probe import (
    MIGRATIONS,
    effects,
    probe_runtime,
    record_effect,
)
from tests.support import Isolation, eventually, publish, read_records, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def probe(iso: Isolation) -> AsyncIterator[ServiceRuntime]:
    runtime = probe_runtime(iso)
    await runtime.start()
    yield runtime
    await runtime.stop()


def lead_event(
    type_name: str = "lead.created", *, lead_id: uuid.UUID | None = None, first_name: str = "Ann"
) -> Envelope:
    lead = Lead(
        id=lead_id or uuid.uuid4(), source="api", source_id=uuid.uuid4().hex, first_name=first_name
    )
    return Envelope.of(type_name, lead, source="/ingest/api/default")


async def all_sent(runtime: ServiceRuntime) -> bool:
    async with runtime.uow() as session:
        count = await session.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        return count == 0


async def effects_once_applied(runtime: ServiceRuntime, count: int) -> dict[str, int] | None:
    applied = await effects(runtime)
    return applied if len(applied) >= count else None


async def effects_including(runtime: ServiceRuntime, event: Envelope) -> dict[str, int] | None:
    applied = await effects(runtime)
    return applied if str(event.id) in applied else None


BACKLOG_WITHIN = 180.0


async def test_the_relay_publishes_a_large_backlog_in_batches_keeping_order_per_key(
    probe: ServiceRuntime, iso: Isolation
) -> None:
    leads = [uuid.uuid4() for _ in range(25)]
    staged = [
        lead_event("lead.updated", lead_id=leads[i % 25], first_name=f"v{i}") for i in range(2500)
    ]
    async with probe.uow() as session:
        await add_to_outbox(session, staged, topics=probe.topics)
    topic = iso.topic("salesops.crm.v1")
    # 2,500 events through relay, broker and consumer: minutes on a machine loaded by other
    # work (it ran out of 30 s at load average 26), seconds otherwise.
    got = await read_topic(
        iso.bootstrap, topic, until=lambda seen: len(seen) >= 2500, within=BACKLOG_WITHIN
    )
    assert {e.id for e in got} == {e.id for e in staged}
    for lead in leads:
        sent_order = [e.id for e in staged if e.subject == str(lead)]
        received_order = [e.id for e in got if e.subject == str(lead)]
        assert received_order == sent_order
    assert await eventually(lambda: all_sent(probe), within=BACKLOG_WITHIN)
    applied = await eventually(lambda: effects_once_applied(probe, 2500), within=BACKLOG_WITHIN)
    assert set(applied.values()) == {1}


async def test_a_record_delivered_twice_has_one_effect(
    probe: ServiceRuntime, iso: Isolation
) -> None:
    lead_id = uuid.uuid4()
    event = lead_event(lead_id=lead_id)
    # Same key, so the same partition: once the marker is applied, so is every copy before it.
    marker = lead_event(lead_id=lead_id)
    await publish(iso.bootstrap, iso.topic("salesops.crm.v1"), [event, event])
    await publish(iso.bootstrap, iso.topic("salesops.crm.v1"), [event, marker])
    applied = await eventually(lambda: effects_including(probe, marker))
    assert applied[str(event.id)] == 1


async def test_a_poison_record_goes_to_the_dlq_and_the_consumer_keeps_going(
    probe: ServiceRuntime, iso: Isolation
) -> None:
    lead_id = uuid.uuid4()
    poison = lead_event("lead.updated", lead_id=lead_id, first_name="boom")
    after = lead_event("lead.updated", lead_id=lead_id, first_name="fine")
    topic = iso.topic("salesops.crm.v1")
    producer = AIOKafkaProducer(bootstrap_servers=iso.bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b"\x00garbage", key=str(lead_id).encode())
    await producer.stop()
    await publish(iso.bootstrap, topic, [poison, after])

    applied = await eventually(lambda: effects_including(probe, after))
    assert str(poison.id) not in applied
    reasons = await dlq_reasons(iso.bootstrap, topic + ".dlq", count=2)
    assert any("cannot be applied" in r for r in reasons)
    assert any("undecodable" in r or "missing CloudEvents" in r for r in reasons)
    metrics = probe.metrics.registry.get_sample_value(
        "salesops_probe_dlq_events_total", {"topic": "salesops.crm.v1"}
    )
    assert metrics == 2


async def dlq_reasons(bootstrap: str, topic: str, *, count: int) -> list[str]:
    dead = await read_records(bootstrap, topic, until=lambda seen: len(seen) >= count, within=60)
    return [dict(r.headers)["x-dlq-reason"].decode() for r in dead]


async def test_a_relay_crash_after_publishing_republishes_and_effects_stay_once(
    probe: ServiceRuntime, iso: Isolation
) -> None:
    """The relay died after the broker acknowledged but before it marked the rows sent:
    the rows are published again and the consumer's inbox absorbs the copies."""
    staged = [lead_event() for _ in range(20)]
    async with probe.uow() as session:
        await add_to_outbox(session, staged, topics=probe.topics)
    topic = iso.topic("salesops.crm.v1")
    await read_topic(iso.bootstrap, topic, until=lambda seen: len(seen) >= 20)
    await eventually(lambda: all_sent(probe))
    async with probe.uow() as session:  # the state such a crash leaves behind
        await session.execute(text("UPDATE outbox SET sent_at = NULL"))
    copies = await read_topic(iso.bootstrap, topic, until=lambda seen: len(seen) >= 40)
    assert len(copies) == 40
    applied = await eventually(lambda: effects_once_applied(probe, 20))
    await eventually(lambda: all_sent(probe))
    assert set(applied.values()) == {1}


async def test_records_are_read_while_a_batch_is_being_applied(iso: Isolation) -> None:
    """aiokafka sends no fetch while records it fetched wait to be taken: a consumer that took
    records only between batches read, after each batch, only what one fetch early in it had
    brought. The runner's reader keeps reading while a batch is applied."""
    entered, release = asyncio.Event(), asyncio.Event()
    first = lead_event()

    async def hold_the_first(ctx: HandlerContext, event: Envelope) -> None:
        if event.id == first.id:
            entered.set()
            await release.wait()
        await record_effect(ctx, event)

    runtime = ServiceRuntime(
        service="probe",
        settings=CommonSettings(**iso.settings_kwargs()),
        database=iso.database("probe"),
        migrations=MIGRATIONS,
    )
    runner = runtime.add_consumer(
        name="crm", subscribe=["salesops.crm.v1"], handlers={"lead.created": hold_the_first}
    )
    await runtime.start()
    try:
        topic = iso.topic("salesops.crm.v1")
        await publish(iso.bootstrap, topic, [first])
        assert await eventually(lambda: _is_set(entered))
        later = [lead_event() for _ in range(5)]
        await publish(iso.bootstrap, topic, later)

        async def read_while_held() -> bool | None:
            return runner.read_ahead == len(later) or None

        assert await eventually(read_while_held)
        assert not release.is_set()
        release.set()
        applied = await eventually(lambda: effects_once_applied(runtime, 1 + len(later)))
        assert set(applied) == {str(e.id) for e in [first, *later]}
        assert set(applied.values()) == {1}
    finally:
        release.set()
        await runtime.stop()


async def _is_set(event: asyncio.Event) -> bool | None:
    return event.is_set() or None


async def test_a_relay_publishing_batch_after_batch_sends_each_row_once_in_order(
    iso: Isolation,
) -> None:
    """A full batch is marked sent in the statement that reads the next one: every row goes
    out once, in order per key, and every row ends marked sent."""
    runtime = probe_runtime(iso)
    runtime.relay = OutboxRelay(
        dsn=runtime.dsn,
        producer_factory=lambda: new_producer(iso.bootstrap),
        metrics=runtime.metrics,
        batch_size=10,
    )
    leads = [uuid.uuid4() for _ in range(3)]
    staged = [
        lead_event("lead.updated", lead_id=leads[i % 3], first_name=f"v{i}") for i in range(25)
    ]
    await runtime.start()
    try:
        async with runtime.uow() as session:
            await add_to_outbox(session, staged, topics=runtime.topics)
        topic = iso.topic("salesops.crm.v1")
        assert await eventually(lambda: all_sent(runtime))
        got = await read_topic(
            iso.bootstrap, topic, until=lambda seen: len(seen) >= 25, settle=True
        )
        assert sorted(str(e.id) for e in got) == sorted(str(e.id) for e in staged)
        for lead in leads:
            assert [e.id for e in got if e.subject == str(lead)] == [
                e.id for e in staged if e.subject == str(lead)
            ]
    finally:
        await runtime.stop()


async def test_the_offsets_of_every_applied_batch_are_committed(iso: Isolation) -> None:
    """A batch's offsets are committed while the next one is applied, the last batch's
    before the consumer leaves: once stopped, the group's offsets are past every record."""
    runtime = probe_runtime(iso)
    await runtime.start()
    staged = [lead_event() for _ in range(6)]
    try:
        await publish(iso.bootstrap, iso.topic("salesops.crm.v1"), staged)
        await eventually(lambda: effects_once_applied(runtime, len(staged)))
    finally:
        await runtime.stop()
    topic = iso.topic("salesops.crm.v1")
    group = AIOKafkaConsumer(
        bootstrap_servers=iso.bootstrap, group_id=iso.topic_prefix + "salesops-probe-crm"
    )
    await group.start()  # not subscribed: it only reads the group's committed offsets
    try:
        partitions = range(iso.settings_kwargs()["kafka_partitions"])
        committed = [await group.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await group.stop()
    assert sum(offset or 0 for offset in committed) == len(staged)
