"""PostgreSQL and the broker restarted under load. The services wait, reconnect and go on;
no 2xx is given for anything not committed; after the dev broker comes back empty, the
relays notice, create the topics again and re-publish their outboxes' history, and the
consumers' inboxes absorb the copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from tests.e2e.faults import Load, running_stack
from tests.e2e.reconcile import reconcile_load
from tests.support import Isolation, eventually

pytestmark = pytest.mark.e2e


async def test_postgres_restarted_under_load_no_2xx_for_anything_not_committed(
    own_postgres: EmbeddedPostgres, broker: EmbeddedBroker, home: Path
) -> None:
    iso = Isolation(database_url=own_postgres.url, bootstrap=broker.bootstrap)
    async with running_stack(iso, home) as stack:
        load = Load(stack.url("ingest"))
        load.start()
        await load.wait_for_batches(5)
        own_postgres.stop()  # fast shutdown: every session is cut
        failed = load.failures

        async def refused() -> bool:
            return load.failures >= failed + 3

        await eventually(refused, within=60)
        own_postgres.start(fsync=False)  # same data, same port
        await load.wait_for_batches(5, within=120)
        await load.stop()
        # What was refused got no 2xx (the load sent it again until one came): reconcile
        # checks that every event with a 2xx is committed and went everywhere once.
        assert not [s for s in load.statuses if 200 <= s < 300 and s != 202]
        print(f"postgres restart: statuses {load.statuses}")
        await reconcile_load(iso, stack, load, "postgres restart")


async def test_broker_restarted_empty_under_load_nothing_lost_nothing_doubled(
    postgres: EmbeddedPostgres, own_broker: EmbeddedBroker, home: Path
) -> None:
    iso = Isolation(database_url=postgres.url, bootstrap=own_broker.bootstrap)
    async with running_stack(iso, home) as stack:
        load = Load(stack.url("ingest"))
        load.start()
        await load.wait_for_batches(5)
        own_broker.stop()
        own_broker.start()  # same port, no topics, no records, no offsets
        await load.wait_for_batches(5, within=120)
        await load.stop()
        await reconcile_load(iso, stack, load, "broker restart")
        assert "re-publishing" in stack.services["ingest"].tail()
