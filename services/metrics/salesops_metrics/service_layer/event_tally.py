"""Events by type, counted in the consuming transaction and written once, just before it
commits.

Every copy of the service updates the same few per-type rows. Written per event, two copies
working through different partitions would hold those row locks for a whole batch and take
them in arrival order: they would serialize and could deadlock. Written once at commit, in
type order, it is one statement per batch and a brief wait at worst; a rolled-back
transaction takes its tally with it, so the inbox's exactly-once holds for the counts too.
"""

from __future__ import annotations

from collections import Counter

from salesops_common.envelope import Envelope
from salesops_common.inbox import HandlerContext
from salesops_metrics.adapters import repository

_TALLY = "salesops_metrics.event_tally"


async def count_event(ctx: HandlerContext, event: Envelope) -> None:
    tally: Counter[str] | None = ctx.state.get(_TALLY)
    if tally is None:
        tally = ctx.state[_TALLY] = Counter()
        counts = tally

        async def write_tally() -> None:
            await repository.add_event_counts(ctx.session, counts)

        ctx.before_commit(write_tally)
    tally[event.type] += 1
