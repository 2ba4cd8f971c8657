"""``python -m bench.routing_history``: does routing slow down as its history grows?

The soak (bench/soak.py) showed routing's ``GET /v1/reps`` and ruleset PUTs slowing over
20 minutes and its consumer falling behind. This reproduces it in about a minute and a half
through the real service: one stack (embedded PostgreSQL with fsync on, Tansu, ``salesops
serve ingest`` for the 100 reps, ``salesops serve routing``), then for each history size
(``--sizes``, default 10k, 50k, 150k leads) the history is added to routing's database
directly (leads, their assignments and history rows, the inbox rows of their events; 30 %
of the leads still open), and the run measures, through the service:

- ``GET /v1/reps``, 20 requests one after the other;
- ``PUT /v1/routing/ruleset``, the soak's two territory models in turn, 4 times;
- the consumer alone: ``--events`` records produced at once straight to ``salesops.crm.v1``
  in the soak's mix (per 10: 6 ``lead.created``, 2 ``lead.updated`` of stored leads,
  2 ``deal.created`` routing ignores), timed from the first record produced until routing's
  inbox holds every handled one: ms an event, and the routing process's CPU ms an event
  (from /proc; what a loaded machine changes least);
- the same with the soak's other routing traffic at once: ``GET /v1/reps`` 5/s (4 at a
  time) and a ruleset PUT every 2 s (the soak: every 20 s).

History rows bypass the service: counters routing keeps of them (``rep_lead_counts``, where
the schema has it) are recomputed from the seeded rows, as the migration that made them does.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import uvloop
from aiokafka import AIOKafkaProducer

from bench.cpu import process_cpu
from bench.report import table
from bench.routing_e2e import TENANT, seed_reps
from bench.soak import rulesets
from bench.stack import ROUTING_DATABASE, TOKEN, Stack
from salesops_common.envelope import Envelope
from salesops_common.events import CRM_TOPIC, Deal, Lead
from salesops_common.settings import database_dsn

API = {"Authorization": f"Bearer {TOKEN}"}
CONSUMER = "routing.crm"

_SEED = [
    """
    INSERT INTO leads (id, attributes, created_at, received_at)
    SELECT md5('hist' || g)::uuid,
           jsonb_build_object('country', CASE WHEN g % 4 = 0 THEN 'DE' ELSE 'US' END,
                              'company', 'History ' || g % 97, 'lead_source', 'Web'),
           now() - interval '30 days', now() - interval '30 days' + g * interval '10 ms'
    FROM generate_series($1::int, $2::int - 1) g
    ON CONFLICT (id) DO NOTHING
    """,
    """
    INSERT INTO assignments (lead_id, rep_id, territory_id, strategy, ruleset_version, reason,
                             explanation, event_id, assigned_at, status)
    SELECT md5('hist' || g)::uuid, ($3::uuid[])[1 + g % cardinality($3::uuid[])],
           CASE WHEN g % 4 = 0 THEN 'dach' ELSE 'us' END, 'round_robin', 1,
           'seeded history', '{"seeded": true}', md5('assigned' || g)::uuid,
           now() - interval '30 days' + g * interval '10 ms',
           CASE WHEN g % 10 < 3 THEN 'open' ELSE 'converted' END
    FROM generate_series($1::int, $2::int - 1) g
    """,
    """
    INSERT INTO assignment_history (lead_id, kind, rep_id, territory_id, strategy, reason,
                                    event_id, assigned_at)
    SELECT md5('hist' || g)::uuid, 'assigned', ($3::uuid[])[1 + g % cardinality($3::uuid[])],
           'us', 'round_robin', 'seeded history', md5('assigned' || g)::uuid,
           now() - interval '30 days' + g * interval '10 ms'
    FROM generate_series($1::int, $2::int - 1) g
    """,
    """
    INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, kafka_offset,
                       status, applied_at)
    SELECT 'routing.crm', md5('created' || g)::uuid, 'lead.created', 'salesops.crm.v1', g % 6, g,
           'applied', now() - interval '30 days' + g * interval '10 ms'
    FROM generate_series($1::int, $2::int - 1) g
    """,
]
_RECOUNT = """
    DO $$ BEGIN
      IF to_regclass('rep_lead_counts') IS NOT NULL THEN
        DELETE FROM rep_lead_counts;
        INSERT INTO rep_lead_counts (rep_id, assigned_leads, open_leads)
        SELECT rep_id, count(*), count(*) FILTER (WHERE status = 'open')
        FROM assignments WHERE rep_id IS NOT NULL GROUP BY rep_id;
      END IF;
    END $$
"""


def _history_id(n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"hist{n}".encode()).hexdigest())  # noqa: S324 - an id


def _events(run: str, count: int, history: int) -> tuple[list[Envelope], list[uuid.UUID]]:
    """The soak's mix; returns the records and the ids routing's inbox will hold."""
    out: list[Envelope] = []
    handled: list[uuid.UUID] = []
    for n in range(count):
        kind = n % 10
        if kind < 6:
            lead = Lead(
                id=uuid.uuid4(),
                source="api",
                tenant=TENANT,
                source_id=f"{run}-{n}",
                email=f"buyer{n}@{run}.example",
                company=f"Soak {n % 97}",
                country="DE" if n % 4 == 0 else "US",
                lead_source="Web",
            )
            out.append(Envelope.of("lead.created", lead, source="/bench"))
            handled.append(out[-1].id)
        elif kind < 8:
            lead = Lead(
                id=_history_id((n * 7919) % max(1, history)),
                source="pipedrive",
                tenant=TENANT,
                source_id=f"person-{n}",
                owner_id=uuid.uuid4(),
                phone=f"+1555{n:06d}",
            )
            out.append(Envelope.of("lead.updated", lead, source="/bench"))
            handled.append(out[-1].id)
        else:
            deal = Deal(
                id=uuid.uuid4(),
                source="api",
                tenant=TENANT,
                source_id=f"{run}-deal-{n}",
                amount=Decimal(1000),
                currency="USD",
                stage="Engaging",
            )
            out.append(Envelope.of("deal.created", deal, source="/bench"))
    return out, handled


async def _produce(producer: AIOKafkaProducer, events: Sequence[Envelope]) -> None:
    sends = [
        await producer.send(
            CRM_TOPIC, e.value(), key=e.record_key, headers=[(k, v) for k, v in e.headers()]
        )
        for e in events
    ]
    await asyncio.gather(*sends)


async def _applied(conn: asyncpg.Connection, ids: Sequence[uuid.UUID]) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
        CONSUMER,
        list(ids),
    )
    return n


async def _consume(
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    events: int,
    history: int,
    cpu: list[float] | None = None,
    pid: int = 0,
) -> float:
    """ms an event, from the first record produced until every handled one is applied;
    ``cpu`` gets the routing process's CPU ms an event over the same time."""
    records, handled = _events(uuid.uuid4().hex[:8], events, history)
    start = time.perf_counter()
    used = process_cpu(pid) if pid else 0.0
    await _produce(producer, records)
    deadline = start + 120
    while await _applied(conn, handled) < len(handled):
        if time.perf_counter() > deadline:
            raise RuntimeError("routing did not apply the records within 120 s")
        await asyncio.sleep(0.1)
    if cpu is not None and pid:
        cpu.append((process_cpu(pid) - used) * 1000 / events)
    return (time.perf_counter() - start) * 1000 / events


async def _timed(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> float:
    start = time.perf_counter()
    resp = await http.request(method, url, **kw)
    resp.raise_for_status()
    return (time.perf_counter() - start) * 1000


async def _gets(http: httpx.AsyncClient, url: str, n: int) -> list[float]:
    return [await _timed(http, "GET", url + "/v1/reps") for _ in range(n)]


async def _puts(
    http: httpx.AsyncClient, url: str, models: list[dict[str, Any]], n: int, turn: int
) -> list[float]:
    return [
        await _timed(http, "PUT", url + "/v1/routing/ruleset", json=models[(turn + i) % 2])
        for i in range(n)
    ]


async def _mix(
    http: httpx.AsyncClient,
    url: str,
    models: list[dict[str, Any]],
    work: asyncio.Task[float],
) -> tuple[list[float], list[float]]:
    """GET /v1/reps 5/s (4 at a time) and a PUT every 2 s while ``work`` runs."""
    gets: list[float] = []
    puts: list[float] = []
    slots = asyncio.Semaphore(4)

    async def one_get() -> None:
        async with slots:
            gets.append(await _timed(http, "GET", url + "/v1/reps"))

    async def getter() -> None:
        pending = set()
        while not work.done():
            pending.add(asyncio.create_task(one_get()))
            await asyncio.sleep(0.2)
        await asyncio.gather(*pending)

    async def putter() -> None:
        turn = 0
        while not work.done():
            puts.append(await _timed(http, "PUT", url + "/v1/routing/ruleset", json=models[turn]))
            turn ^= 1
            await asyncio.sleep(2.0)

    await asyncio.gather(getter(), putter(), work)
    return gets, puts


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):,.1f} / {max(values):,.1f}"


async def run(sizes: Sequence[int], events: int) -> list[list[str]]:
    stack = Stack.start()
    rows: list[list[str]] = []
    try:
        ingest, routing = stack.ingest(), stack.routing()
        async with httpx.AsyncClient(headers=API, timeout=300) as http:
            rep_ids = await seed_reps(http, ingest.url, routing.url, within=120)
            models = rulesets(rep_ids)
            await _puts(http, routing.url, models, 1, 0)
            conn = await asyncpg.connect(database_dsn(stack.pg.url, ROUTING_DATABASE))
            producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=5)
            await producer.start()
            try:
                await _consume(producer, conn, 200, 1)  # warm: topics, model, connections
                seeded = 0
                for size in sizes:
                    reps = [uuid.UUID(r) for r in rep_ids]
                    for statement in _SEED:
                        args = (seeded, size, reps) if "$3" in statement else (seeded, size)
                        await conn.execute(statement, *args)
                    await conn.execute(_RECOUNT)
                    await conn.execute("ANALYZE")
                    seeded = size
                    gets = await _gets(http, routing.url, 20)
                    puts = await _puts(http, routing.url, models, 4, 1)
                    cpu: list[float] = []
                    alone = await _consume(producer, conn, events, size, cpu, routing.pid)
                    work = asyncio.create_task(_consume(producer, conn, events, size))
                    mix_gets, mix_puts = await _mix(http, routing.url, models, work)
                    rows.append(
                        [
                            f"{size:,}",
                            _ms(gets),
                            _ms(puts),
                            f"{alone:.2f}",
                            f"{cpu[0]:.2f}",
                            f"{work.result():.2f}",
                            _ms(mix_gets),
                            _ms(mix_puts),
                        ]
                    )
                    print(" | ".join(rows[-1]), flush=True)
            finally:
                await producer.stop()
                await conn.close()
    finally:
        stack.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.routing_history", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 150_000])
    p.add_argument("--events", type=int, default=1500, help="records per consumer run (1500)")
    args = p.parse_args(argv)
    rows = uvloop.run(run(args.sizes, args.events))
    print()
    print(
        table(
            [
                "leads stored",
                "GET /v1/reps ms p50 / max",
                "ruleset PUT ms p50 / max",
                "consumer ms/event alone",
                "routing CPU ms/event alone",
                "consumer ms/event with GETs + PUTs",
                "GET ms p50 / max (mix)",
                "PUT ms p50 / max (mix)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
