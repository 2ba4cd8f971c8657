"""Reconciliation after a fault: every event ingest acknowledged was published and applied
exactly once by every consumer, and the KPIs equal a recomputation from the events.

Read straight from each service's database (outbox, inbox, projections): the test checks
the services' state, not what their APIs choose to show.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson

from salesops_common.settings import database_dsn
from tests.e2e.faults import CATCH_UP_WITHIN, Load, Stack
from tests.support import AUTH, Isolation, eventually

# Which of the load's event types each consumer applies (its handler registry's share).
CONSUMES: dict[str, tuple[str, str, set[str]]] = {
    "routing.crm": ("routing", "salesops.crm.v1", {"rep.created", "lead.created"}),
    "forecast.crm": (
        "forecast",
        "salesops.crm.v1",
        {"rep.created", "lead.created", "deal.created", "deal.won", "deal.lost"},
    ),
    "ingest.writeback": ("ingest", "salesops.routing.v1", {"lead.assigned"}),
}
PUBLISHERS = ("ingest", "routing", "forecast")
MAIN_TOPICS = ("salesops.crm.v1", "salesops.routing.v1", "salesops.forecast.v1")


@asynccontextmanager
async def database(iso: Isolation, service: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database(service)))
    try:
        yield conn
    finally:
        await conn.close()


async def published(iso: Isolation) -> dict[str, dict[str, str]]:
    """Every event the publishers committed to their outboxes: topic -> event id -> type."""
    found: dict[str, dict[str, str]] = {t: {} for t in MAIN_TOPICS}
    for service in PUBLISHERS:
        async with database(iso, service) as conn:
            rows = await conn.fetch("SELECT DISTINCT event_id, topic, headers FROM outbox")
        for row in rows:
            logical = iso_logical(iso, row["topic"])
            if logical in found:
                found[logical][str(row["event_id"])] = _type(row["headers"])
    return found


def iso_logical(iso: Isolation, topic: str) -> str:
    return topic.removeprefix(iso.topic_prefix)


def _type(headers: bytes) -> str:
    ce_type: str = orjson.loads(headers)["ce_type"]
    return ce_type.removeprefix("io.salesops.")


async def unsent(iso: Isolation) -> int:
    total = 0
    for service in (*PUBLISHERS, "metrics"):
        async with database(iso, service) as conn:
            total += int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    return total


async def inbox(iso: Isolation, service: str, consumer: str) -> dict[str, str]:
    async with database(iso, service) as conn:
        rows = await conn.fetch("SELECT event_id, status FROM inbox WHERE consumer = $1", consumer)
    return {str(r["event_id"]): r["status"] for r in rows}


async def metrics_log(iso: Isolation) -> list[str]:
    async with database(iso, "metrics") as conn:
        return [str(r[0]) for r in await conn.fetch("SELECT event_id FROM event_log")]


@dataclass
class Missing:
    """What is still to arrive somewhere; empty once the system has caught up."""

    unsent: int
    by_consumer: dict[str, int]

    def __bool__(self) -> bool:
        return bool(self.unsent or any(self.by_consumer.values()))


async def missing(iso: Isolation) -> Missing:
    events = await published(iso)
    everything = {i for by_id in events.values() for i in by_id}
    gaps = {"metrics.all": len(everything - set(await metrics_log(iso)))}
    for consumer, (service, topic, types) in CONSUMES.items():
        wanted = {i for i, t in events[topic].items() if t in types}
        gaps[consumer] = len(wanted - set(await inbox(iso, service, consumer)))
    return Missing(await unsent(iso), gaps)


async def caught_up(iso: Isolation, *, within: float) -> float:
    """Wait until every committed event has reached every consumer; the seconds it took."""
    started = time.monotonic()

    async def done() -> bool:
        return not await missing(iso)

    try:
        await eventually(done, within=within, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"not caught up: {await missing(iso)}") from exc
    return time.monotonic() - started


async def kpi_values(http: httpx.AsyncClient, metrics_url: str) -> dict[str, Any]:
    resp = await http.get(metrics_url + "/v1/kpis")
    assert resp.status_code == 200, resp.text
    return {k["kpi"]: k["value"] for k in resp.json()["kpis"]}


async def rebuild(http: httpx.AsyncClient, metrics_url: str) -> httpx.Response:
    """POST /v1/rebuild, once: a 500 (it used to meet deadlocks with KPI reads) fails the
    reconciliation."""
    resp = await http.post(metrics_url + "/v1/rebuild")
    assert resp.status_code == 200, resp.text
    return resp


async def reconcile(
    iso: Isolation, urls: dict[str, str], acknowledged: set[str], *, within: float
) -> float:
    """Wait for the catch-up, then check nothing was lost or doubled and that the KPIs are
    what the events give; returns the catch-up time in seconds."""
    seconds = await caught_up(iso, within=within)
    events = await published(iso)
    crm = events["salesops.crm.v1"]
    # Every 2xx'd event was committed and published (ingest stages each once).
    assert acknowledged <= set(crm), f"{len(acknowledged - set(crm))} acknowledged, not published"
    # Metrics logged each published event once (its inbox, not an index of the log, sees to
    # it: the log has no unique index since migration 0004), and nothing else.
    logged = await metrics_log(iso)
    everything = {i for by_id in events.values() for i in by_id}
    assert len(logged) == len(set(logged))
    assert set(logged) == everything
    # No consumer dead-lettered anything.
    for service in ("ingest", "routing", "metrics", "forecast"):
        async with database(iso, service) as conn:
            bad = await conn.fetch("SELECT consumer, reason FROM inbox WHERE status <> 'applied'")
        assert not bad, f"{service}: {bad[:5]}"
    # Routing assigned each lead once: one assignment, one 'assigned' in its history, and one
    # lead.assigned published per lead.created.
    leads = [i for i, t in crm.items() if t == "lead.created"]
    async with database(iso, "routing") as conn:
        assignments = int(await conn.fetchval("SELECT count(*) FROM assignments"))
        doubled = await conn.fetch(
            "SELECT lead_id FROM assignment_history WHERE kind = 'assigned' "
            "GROUP BY lead_id HAVING count(*) > 1"
        )
    assert assignments == len(leads)
    assert not doubled
    assigned = [i for i, t in events["salesops.routing.v1"].items() if t == "lead.assigned"]
    assert len(assigned) == len(leads)
    # Forecast holds each deal once.
    deals = {t: sum(1 for v in crm.values() if v == t) for t in ("deal.created", "deal.won")}
    async with database(iso, "forecast") as conn:
        assert int(await conn.fetchval("SELECT count(*) FROM deals")) == deals["deal.created"]
    # KPIs: the incremental numbers equal metrics' rebuild from its log, and the win rate
    # equals the one counted here from ingest's events.
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
        live = await kpi_values(http, urls["metrics"])
        rebuilt = await rebuild(http, urls["metrics"])
        assert rebuilt.json()["events"] == len(everything)
        assert await kpi_values(http, urls["metrics"]) == live
    closed = deals["deal.won"] + sum(1 for v in crm.values() if v == "deal.lost")
    if closed:
        assert float(live["win_rate"]) == deals["deal.won"] / closed
    else:
        assert live["win_rate"] is None
    return seconds


async def reconcile_load(iso: Isolation, stack: Stack, load: Load, fault: str) -> float:
    """``reconcile`` what the load got acknowledged, within the tests' catch-up bound, and
    print the catch-up time (shown with ``pytest -s``)."""
    seconds = await reconcile(iso, stack.urls(), load.acknowledged, within=CATCH_UP_WITHIN)
    print(f"{fault}: {load.batches} batches; caught up {seconds:.1f}s after the load stopped")
    return seconds
