"""The broker restarts empty (the dev broker keeps nothing): the relay notices, creates the
topics again and re-publishes its outbox's history; the consumer's inbox drops the copies."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_common.envelope import Envelope
from salesops_common.inbox import HandlerContext
from salesops_common.kafka import topic_exists
from salesops_common.outbox import add_to_outbox
from salesops_common.runtime import ServiceRuntime
from tests.common.integration.probe import effects, probe_runtime, record_effect
from tests.common.integration.test_messaging import all_sent, effects_once_applied, lead_event
from tests.support import Isolation, eventually, publish, read_topic

pytestmark = pytest.mark.integration


async def stage(runtime: ServiceRuntime, count: int) -> None:
    async with runtime.uow() as session:
        await add_to_outbox(session, [lead_event() for _ in range(count)], topics=runtime.topics)


async def partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        return len(described[0]["partitions"])
    finally:
        await admin.close()


async def test_after_the_broker_restarts_empty_the_outbox_history_is_published_again(
    postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> None:
    iso = Isolation(database_url=postgres.url, bootstrap=own_broker.bootstrap)
    probe = probe_runtime(iso)
    await probe.start()
    try:
        await stage(probe, 30)
        await eventually(lambda: effects_once_applied(probe, 30), within=60)
        own_broker.stop()
        own_broker.start()  # same port, nothing on it
        await stage(probe, 10)
        topic = iso.topic("salesops.crm.v1")
        await eventually(lambda: topic_exists(iso.bootstrap, topic), within=30)
        # The 30 published before the restart are on the new broker again, with the 10.
        again = await read_topic(iso.bootstrap, topic, until=lambda seen: len(seen) >= 40)
        assert len({e.id for e in again}) == 40
        applied = await eventually(lambda: effects_once_applied(probe, 40), within=60)
        assert set(applied.values()) == {1}
        await eventually(lambda: all_sent(probe))
        # Created by the relay, not auto-created with the broker's default (which the
        # consumer, reconnecting, may do first for the topics it reads).
        assert await partitions(iso.bootstrap, iso.topic("salesops.routing.v1.dlq")) == 3
        async with probe.uow() as session:
            sent = await session.scalar(text("SELECT count(*) FROM outbox"))
        assert sent == 40
        assert probe.metrics.outbox_republished._value.get() == 30
    finally:
        await probe.stop()
    assert set((await effects(probe)).values()) == {1}


async def test_a_batch_applied_across_the_broker_restart_commits_no_offset_of_the_old_log(
    postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> None:
    """A consumer is applying a batch when the broker restarts empty; before the batch ends,
    the member has rejoined the group on the new broker under a new generation. Committing
    the batch's offsets then would succeed and point past records of the new log that no one
    has read: the next member to take the partition (here, the service restarted) would skip
    them. So a batch during which the group rebalanced commits nothing."""
    iso = Isolation(database_url=postgres.url, bootstrap=own_broker.bootstrap)
    applying, release = asyncio.Event(), asyncio.Event()

    async def slow_on_hold(ctx: HandlerContext, event: Envelope) -> None:
        if event.data.get("first_name") == "hold":
            applying.set()
            await release.wait()
        await record_effect(ctx, event)

    topic = iso.topic("salesops.crm.v1")
    probe = probe_runtime(iso, {"lead.created": slow_on_hold})
    await probe.start()
    try:
        before = [lead_event() for _ in range(150)]  # about 50 records a partition
        await publish(iso.bootstrap, topic, before)
        await eventually(lambda: effects_once_applied(probe, 150), within=60)
        await publish(iso.bootstrap, topic, [lead_event(first_name="hold")])
        async with asyncio.timeout(30):
            await applying.wait()
        runner = probe.consumers[0]
        seen = runner.rebalances.count
        own_broker.stop()
        own_broker.start()  # same port, nothing on it

        async def rejoined() -> bool:
            return runner.rebalances.count > seen and bool(runner.rebalances.assigned)

        await eventually(rejoined, within=60)
        release.set()  # the batch ends, under the new generation
        await eventually(lambda: effects_once_applied(probe, 151), within=30)
    finally:
        release.set()
        await probe.stop()

    # Records the new log holds at offsets below the old log's: a stale commit skips them.
    fresh = [lead_event() for _ in range(30)]
    await publish(iso.bootstrap, topic, fresh)
    again = probe_runtime(iso, {"lead.created": record_effect})
    await again.start()
    try:
        applied = await eventually(lambda: effects_once_applied(again, 181), within=60)
        assert {str(e.id) for e in fresh} <= set(applied)
        assert set(applied.values()) == {1}
    finally:
        await again.stop()
