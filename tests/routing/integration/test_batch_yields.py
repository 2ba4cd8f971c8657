"""A batch of new leads is decided in turns: requests that arrive while routing decides a big
batch are served between its decisions, not after the whole batch (the soak's GET /v1/reps
waited seconds behind batches of hundreds of leads)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from salesops_common.events import Lead
from salesops_routing.service_layer import assignment
from tests.routing.integration.helpers import applied, crm, hire, new_lead, new_rep, put_on_crm
from tests.support import Isolation

LEADS = 120


async def test_a_big_batch_gives_the_event_loop_a_turn_every_few_decisions(
    routing: httpx.AsyncClient, iso: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hire(iso, routing, [new_rep("ANN"), new_rep("BOB")])
    seen: list[str] = []  # "d": a decision began; "t": another task had a turn
    batches: list[int] = []
    decide, assign_leads = assignment.decide, assignment.assign_leads

    async def recorded_decide(*args: Any, **kwargs: Any) -> Any:
        seen.append("d")
        return await decide(*args, **kwargs)

    async def recorded_assign(ctx: Any, leads: Sequence[Lead]) -> Any:
        batches.append(len(leads))
        return await assign_leads(ctx, leads)

    monkeypatch.setattr(assignment, "decide", recorded_decide)
    monkeypatch.setattr(assignment, "assign_leads", recorded_assign)
    stop = asyncio.Event()

    async def other_task() -> None:
        while not stop.is_set():
            seen.append("t")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    try:
        await put_on_crm(iso, [crm("lead.created", new_lead(f"L{n}")) for n in range(LEADS)])
        await applied(routing, 2 + LEADS)
    finally:
        stop.set()
        await ticker

    assert seen.count("d") == LEADS
    # Conclusive only if some batch was bigger than a turn's worth of decisions.
    assert max(batches) > assignment.YIELD_EVERY, batches
    runs = "".join(seen).replace("t", " ").split()
    assert max(len(run) for run in runs) <= assignment.YIELD_EVERY
