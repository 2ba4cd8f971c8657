"""The handlers: log and count every event, then project it; record dead letters; rebuild
the projections from the log.

Rows a handler writes are either keyed by the event's id (facts that happen once) or merged
field by field by event time (entities): the inbox drops a redelivered event, and any arrival
order of different events leaves the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from salesops_common.db import UnitOfWork, driver_connection
from salesops_common.envelope import Envelope
from salesops_common.inbox import HandlerContext
from salesops_metrics.adapters import repository
from salesops_metrics.domain.projection import effects_of
from salesops_metrics.service_layer.intake import REBUILD_LOCK_ID, take_in

REPLAY_PAGE = 2000


async def apply_event(ctx: HandlerContext, event: Envelope) -> None:
    """Any event of the main topics: logged, counted, projected, in the consumer's
    transaction. An invalid payload raises before anything is written for it: the record
    goes to the dead-letter topic and is neither logged nor counted."""
    await take_in(ctx, event, effects_of(event))


async def record_dead_letter(ctx: HandlerContext, event: Envelope) -> None:
    """Any record of a ``<topic>.dlq`` (its envelope is the original event's)."""
    conn = await driver_connection(ctx.session)
    await repository.record_dead_letter(conn, event)


@dataclass(frozen=True)
class Rebuilt:
    events: int
    seconds: float


async def rebuild(uow: UnitOfWork) -> Rebuilt:
    """Empty the projections and apply the event log again, in the order the events first
    arrived, in one transaction: readers see the old numbers or the new, never a mix."""
    started = time.perf_counter()
    async with uow() as session:
        conn = await driver_connection(session)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", REBUILD_LOCK_ID)
        await repository.empty_projections(conn)
        applied = await _replay(conn)
        await repository.recount_events(conn)
    return Rebuilt(applied, time.perf_counter() - started)


async def _replay(conn: asyncpg.Connection) -> int:
    after, applied = 0, 0
    while rows := await repository.logged_events(conn, after=after, limit=REPLAY_PAGE):
        effects = [e for row in rows for e in effects_of(repository.envelope_of(row))]
        await repository.write_effects(conn, effects)
        after = rows[-1]["seq"]
        applied += len(rows)
    return applied
