"""kill -9 of each service in turn while a load generator posts to ingest: restarted, the
system catches up with no manual action and reconciles (nothing lost, nothing doubled).

Starting a service process is most of these tests' time (imports, migrations, joining a
consumer group), so one stack serves several kills where they do not interfere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from salesops_common.outbox import RELAY_LOCK_ID
from salesops_common.settings import database_dsn
from tests.e2e.faults import Load, Stack, running_stack
from tests.e2e.reconcile import reconcile_load
from tests.support import Isolation, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(iso: Isolation, home: Path) -> AsyncIterator[Stack]:
    async with running_stack(iso, home) as running:
        yield running


async def test_ingest_killed_mid_batch_loses_nothing_it_acknowledged(
    stack: Stack, iso: Isolation
) -> None:
    """The load never pauses, so the kill lands in the middle of a request: the client
    gets no answer and sends the batch again, which ingest deduplicates if it had committed."""
    load = Load(stack.url("ingest"))
    load.start()
    await load.wait_for_batches(5)
    await load.mid_request()
    stack.services["ingest"].kill()
    await stack.start("ingest")
    await load.wait_for_batches(5)
    await load.stop()
    assert load.failures >= 1  # some attempt met the dead process
    await reconcile_load(iso, stack, load, "ingest")


async def test_each_consumer_killed_in_turn_under_load_catches_up_after_restart(
    stack: Stack, iso: Isolation
) -> None:
    load = Load(stack.url("ingest"))
    load.start()
    for victim in ("routing", "metrics", "forecast"):
        await load.wait_for_batches(3)
        stack.services[victim].kill()  # consuming all the while: mid-batch
    await load.wait_for_batches(3)
    await stack.start("routing", "metrics", "forecast")
    await load.wait_for_batches(5)
    await load.stop()
    await reconcile_load(iso, stack, load, "consumers")


async def test_events_routing_committed_but_did_not_publish_before_a_crash_go_out_once(
    stack: Stack, iso: Isolation
) -> None:
    """Routing's relay cannot publish (the test holds its leader lock) while routing
    assigns leads and commits lead.assigned to its outbox; then routing is killed."""
    holder = await asyncpg.connect(database_dsn(iso.database_url, iso.database("routing")))
    try:
        stack.services["routing"].kill()  # its relay, the leader, held the lock
        await holder.execute("SELECT pg_advisory_lock($1)", RELAY_LOCK_ID)
        await stack.start("routing")
        load = Load(stack.url("ingest"))
        load.start()

        async def staged() -> bool:
            sql = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            return int(await holder.fetchval(sql)) >= 20

        await eventually(staged, within=60)
        stack.services["routing"].kill()
    finally:
        await holder.close()  # releases the lock
    await stack.start("routing")
    await load.wait_for_batches(3)
    await load.stop()
    await reconcile_load(iso, stack, load, "routing relay")


async def test_a_second_routing_joining_and_leaving_mid_load_changes_no_assignment(
    stack: Stack, iso: Isolation
) -> None:
    """Partitions move to the new member and back while batches are in flight: an offset
    commit a rebalance refuses means a re-read, which the inbox drops."""
    load = Load(stack.url("ingest"))
    load.start()
    await load.wait_for_batches(3)
    second = stack.copy("routing", 1)
    stack.extra.append(second)
    await second.start()
    await load.wait_for_batches(5)
    second.stop()  # SIGTERM: it leaves the group and its partitions move back
    await load.wait_for_batches(5)
    await load.stop()
    await reconcile_load(iso, stack, load, "rebalance")
