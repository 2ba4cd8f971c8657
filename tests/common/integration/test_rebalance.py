"""A consumer group member joins mid-stream and leaves again: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio

import pytest

from salesops_common.runtime import ServiceRuntime
from tests.common.integration.probe import effects, probe_runtime
from tests.common.integration.test_messaging import lead_event
from tests.support import Isolation, eventually, publish

pytestmark = pytest.mark.integration


async def test_a_member_joining_and_leaving_mid_stream_changes_no_effect(iso: Isolation) -> None:
    first = probe_runtime(iso)
    await first.start()
    second: ServiceRuntime | None = None
    topic = iso.topic("salesops.crm.v1")
    events = [lead_event() for _ in range(1500)]
    try:
        await publish(iso.bootstrap, topic, events[:500])
        second = probe_runtime(iso)  # same database, same consumer group
        await second.start()
        await publish(iso.bootstrap, topic, events[500:1000])
        await eventually(lambda: any_assigned(second), within=60)
        await second.stop()  # leaves the group: its partitions move back
        second = None
        await publish(iso.bootstrap, topic, events[1000:])

        async def all_applied() -> dict[str, int] | None:
            applied = await effects(first)
            return applied if len(applied) >= len(events) else None

        applied = await eventually(all_applied, within=120)
        assert set(applied) == {str(e.id) for e in events}
        assert set(applied.values()) == {1}
    finally:
        if second is not None:
            await second.stop()
        await first.stop()


async def any_assigned(runtime: ServiceRuntime) -> bool:
    await asyncio.sleep(0)
    return any(c.assigned for c in runtime.consumers)
