"""Per-lead cost of ingest's duplicate matching with many leads under one company domain
(issue 7, "Load and soak": ingest slowed down over a 20-minute soak).

``python -m bench.ingest_dedupe [--sizes 0,1000,10000,50000] [--repeats 40]``

On an embedded PostgreSQL (fsync off: nothing is committed, see below) with ingest's schema,
``lead_keys`` is filled with N leads under one domain, keyed exactly as the pipeline keys
them (:func:`blocking_keys`), then one ``POST /v1/events`` array of 8 new leads under that
domain is applied through ingest's pipeline (``apply_events``, the code a request runs:
archive, lock, candidate read, matching, writes, outbox) and rolled back, ``--repeats``
times; the median per lead is reported, with its ratio to N = 0 measured in the same run.

Two populations, since the key scheme treats them differently:

- ``nameless``: leads as ``make soak`` posts them (e-mail and company, no name);
- ``named``: leads with a first and a last name, all different people (generated names,
  none one typo from another in the new leads), as a real company's contacts are.

The new leads never match (they are new people), so each one is compared with every
candidate its keys bring: the figure is the price of the candidate set's size.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.report import table
from salesops_cli.infra import EmbeddedPostgres, free_port, remove_tree
from salesops_common.db import create_engine, migrate, wait_for_database
from salesops_common.kafka import Topics
from salesops_common.settings import database_dsn
from salesops_ingest.adapters import state
from salesops_ingest.bootstrap import MIGRATIONS
from salesops_ingest.domain.mapping import load_mappings
from salesops_ingest.domain.matching import LeadIdentity, blocking_keys
from salesops_ingest.domain.model import ValidEvent, validate_events
from salesops_ingest.service_layer import pipeline
from salesops_ingest.service_layer.accept import apply_events, prepare_events
from salesops_ingest.service_layer.processor import Mappings, Processor

DATABASE = "salesops_ingest_bench_dedupe"
DOMAIN = "big.example"
ARRAY = 8
_SYLLABLES = (
    "ka ri mo ta lu ne so vi da pe gor ban tel mar vin sul dor fen hal jor kes lim "
    "nor pav quin ros tam ulm var wes yor zan bri cha dra fro gla kru ple sta tro"
).split()
_FIRSTS = (
    "Anna Bruno Clara David Elena Felix Greta Hugo Irene Jonas Karla Lukas Marta Nils Olga "
    "Paul Rita Simon Tessa Umberto Vera Walter Xenia Yusuf Zora"
).split()


def last_names(count: int, seed: int) -> list[str]:
    """``count`` distinct generated last names of 2-4 syllables."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).title()
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def identities(count: int, *, named: bool, tag: str) -> list[dict[str, Any]]:
    lasts = last_names(count, seed=7) if named else []
    out = []
    for i in range(count):
        ident: dict[str, Any] = {f: None for f in LeadIdentity.__dataclass_fields__}
        ident.update(email=f"{tag}{i}@{DOMAIN}", domain=DOMAIN, company="Big")
        if named:
            ident.update(first_name=_FIRSTS[i % len(_FIRSTS)], last_name=lasts[i])
        out.append(ident)
    return out


async def preload(conn: asyncpg.Connection, count: int, *, named: bool) -> int:
    """``count`` leads in ``lead_keys`` under DOMAIN; returns the rows written."""
    await conn.execute("TRUNCATE lead_keys")
    rows = []
    for ident in identities(count, named=named, tag="old"):
        lead_id = uuid.uuid4()
        doc = orjson.dumps(ident).decode()
        rows.extend((t, v, lead_id, doc) for t, v in blocking_keys(LeadIdentity(**ident)))
    if rows:
        await conn.copy_records_to_table(
            "lead_keys", records=rows, columns=["key_type", "value", "lead_id", "identity"]
        )
    await conn.execute("ANALYZE lead_keys")
    return len(rows)


def new_leads(n: int, *, named: bool) -> list[dict[str, Any]]:
    """An array of ARRAY new leads under DOMAIN (distinct people: last names generated
    with another seed, checked not to be among the preloaded ones)."""
    events = []
    for i in range(ARRAY):
        data: dict[str, Any] = {
            "source_id": f"new-{n}-{i}",
            "email": f"new{n}x{i}@{DOMAIN}",
            "company": "Big",
        }
        if named:
            data.update(first_name="Quentin", last_name=f"Newcomer{chr(97 + i)}{n}")
        events.append(
            {
                "type": "lead.created",
                "source": "api",
                "tenant": "bench",
                "source_event_id": f"new-{n}-{i}-{uuid.uuid4().hex[:8]}",
                "occurred_at": "2026-11-29T10:00:00+00:00",
                "data": data,
            }
        )
    return events


@dataclass
class Point:
    population: str
    size: int
    key_rows: int
    per_lead_ms: float
    rows_read: float  # rows the candidate query returned per array of ARRAY leads
    compared: float  # candidates each new lead was compared with


async def measure(
    conn: asyncpg.Connection, processor: Processor, *, named: bool, repeats: int
) -> tuple[float, float, float]:
    times = []
    fetched = 0
    original = state.candidate_leads

    async def counting(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> Any:
        nonlocal fetched
        rows = await original(conn, keys)
        fetched += len(rows)
        return rows

    compared = 0
    original_match = pipeline.best_match

    def counting_match(new: LeadIdentity, candidates: Sequence[tuple[Any, LeadIdentity]]) -> Any:
        nonlocal compared
        compared += len(candidates)
        return original_match(new, candidates)

    state.candidate_leads = counting  # type: ignore[assignment]
    pipeline.best_match = counting_match  # type: ignore[assignment]
    try:
        for n in range(repeats + 3):
            valid = validate_events(new_leads(n, named=named))
            prepared = prepare_events(processor, [v for v in valid if isinstance(v, ValidEvent)])
            if n == 3:
                fetched = compared = 0
            tx = conn.transaction()
            await tx.start()
            started = time.perf_counter()
            result, _ = await apply_events(conn, processor, [prepared])
            elapsed = time.perf_counter() - started
            await tx.rollback()
            assert [o.status for o in result.outcomes] == ["accepted"] * ARRAY, result.outcomes
            if n >= 3:  # three warm-up arrays
                times.append(elapsed)
    finally:
        state.candidate_leads = original  # type: ignore[assignment]
        pipeline.best_match = original_match  # type: ignore[assignment]
    per_lead = statistics.median(times) * 1000 / ARRAY
    return per_lead, fetched / repeats, compared / (repeats * ARRAY)


async def run(sizes: Sequence[int], repeats: int) -> list[Point]:
    root = Path(tempfile.mkdtemp(prefix="salesops-bench-dedupe-"))
    pg = EmbeddedPostgres(data_dir=root / "pg", port=free_port())
    pg.start(fsync=False)
    engine = None
    points = []
    try:
        await wait_for_database(pg.url, DATABASE)
        dsn = database_dsn(pg.url, DATABASE)
        engine = create_engine(dsn)
        await migrate(engine, MIGRATIONS)
        processor = Processor(
            dsn=dsn, topics=Topics(""), mappings=Mappings(load_mappings(None)), parsers={}
        )
        conn = await asyncpg.connect(dsn)
        try:
            for named in (False, True):
                for size in sizes:
                    key_rows = await preload(conn, size, named=named)
                    per_lead, rows_read, compared = await measure(
                        conn, processor, named=named, repeats=repeats
                    )
                    population = "named" if named else "nameless"
                    points.append(Point(population, size, key_rows, per_lead, rows_read, compared))
                    print(
                        f"  {population:8} N={size:>6}: {per_lead:7.2f} ms a lead, "
                        f"{rows_read:8.1f} key rows read an array, {compared:8.1f} compared a lead",
                        flush=True,
                    )
        finally:
            await conn.close()
    finally:
        if engine is not None:
            await engine.dispose()
        pg.stop()
        remove_tree(root)
    return points


def report(points: Sequence[Point]) -> str:
    base = {p.population: p.per_lead_ms for p in points if p.size == 0}
    rows = [
        [
            p.population,
            f"{p.size:,}",
            f"{p.key_rows:,}",
            f"{p.rows_read:,.0f}",
            f"{p.compared:,.0f}",
            f"{p.per_lead_ms:.2f}",
            f"{p.per_lead_ms / base[p.population]:.1f}x" if p.population in base else "-",
        ]
        for p in points
    ]
    header = [
        "leads",
        "N under the domain",
        "lead_keys rows",
        "key rows read an array",
        "compared a lead",
        "ms a lead",
    ]
    return table([*header, "vs N = 0"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_dedupe", description=__doc__)
    p.add_argument("--sizes", default="0,1000,10000,50000")
    p.add_argument("--repeats", type=int, default=40)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    points = asyncio.run(run(sizes, args.repeats))
    print(report(points))


if __name__ == "__main__":
    main()
