"""Every applied event is logged (the rebuild replays the log), counted by type and
projected, all written once per batch, just before the consuming transaction commits: a few
set-based statements per batch instead of several per event.

Every copy of the service updates the same few per-type count rows. Written per event, two
copies working through different partitions would hold those row locks for a whole batch and
take them in arrival order: they would serialize and could deadlock. Written once at commit, in
type order, it is one statement per batch and a brief wait at worst; a rolled-back transaction
takes its tally and its log rows with it, so the inbox's exactly-once holds for both.

A batch first takes the rebuild lock in shared mode: batches never wait for each other, and
a rebuild (which takes it exclusively) waits for the batches in flight and holds new ones
back until it commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from salesops_common.db import driver_connection
from salesops_common.envelope import Envelope
from salesops_common.inbox import HandlerContext
from salesops_metrics.adapters import repository
from salesops_metrics.domain.projection import Effect

_BATCH = "salesops_metrics.intake"
# Any fixed number, other than the migrations' lock; the same for every copy.
REBUILD_LOCK_ID = 0x5A1E5096


@dataclass
class _Batch:
    conn: asyncpg.Connection
    counts: Counter[str] = field(default_factory=Counter)
    events: list[Envelope] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    async def write(self) -> None:
        await repository.log_events(self.conn, self.events)
        await repository.write_effects(self.conn, self.effects)
        await repository.add_event_counts(self.conn, self.counts)


async def take_in(ctx: HandlerContext, event: Envelope, effects: Sequence[Effect]) -> None:
    """Log, count and project ``event`` with its batch."""
    batch: _Batch | None = ctx.state.get(_BATCH)
    if batch is None:
        conn = await driver_connection(ctx.session)
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", REBUILD_LOCK_ID)
        batch = ctx.state[_BATCH] = _Batch(conn)
        ctx.before_commit(batch.write)
    batch.counts[event.type] += 1
    batch.events.append(event)
    batch.effects.extend(effects)
