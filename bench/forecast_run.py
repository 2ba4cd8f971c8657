"""A whole forecast run with 100,000 open deals (issue 6): ``run_forecast`` on a real
PostgreSQL (embedded, fsync on) holding the generated deals of bench/forecast_scoring.py
with their accounts, owners, stage history and activity — read the snapshot, fit both
models, score, forecast every scope, store forecasts and scores, stage the events in the
outbox. Run twice: the first publishes every deal's first score, the second (nothing
changed) only scores that moved. No broker: the relay is not running, the events stay in
the outbox table.

``python -m bench.forecast_run [--open N] [--closed N]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.forecast_scoring import AS_OF, generate
from bench.report import table
from salesops_cli.infra import EmbeddedPostgres, free_port, remove_tree
from salesops_common.db import UnitOfWork, create_engine, migrate, wait_for_database
from salesops_common.kafka import Topics
from salesops_common.settings import database_dsn
from salesops_forecast.bootstrap import MIGRATIONS
from salesops_forecast.domain.facts import DealFacts
from salesops_forecast.service_layer.forecasting import run_forecast

DATABASE = "salesops_forecast_bench"


async def load(conn: asyncpg.Connection, deals: Sequence[DealFacts]) -> None:
    owners = {(d.owner_id, d.manager_id, d.team) for d in deals}
    await conn.copy_records_to_table(
        "reps",
        records=[(o, t, m, f"{o}@example.com") for o, m, t in owners],
        columns=["rep_id", "team", "manager_id", "email"],
    )
    accounts = [uuid.uuid4() for _ in deals]
    await conn.copy_records_to_table(
        "accounts",
        records=[
            (a, d.industry, d.employees, d.annual_revenue, d.country, d.territory)
            for a, d in zip(accounts, deals, strict=True)
        ],
        columns=[
            "account_id",
            "industry",
            "employees",
            "annual_revenue",
            "country",
            "territory_id",
        ],
    )
    await conn.copy_records_to_table(
        "deals",
        records=[
            (
                d.deal_id,
                d.stage,
                d.amount,
                d.currency,
                d.owner_id,
                a,
                d.created_at,
                d.closed_at,
                d.product,
                d.stage_entered_at,
                d.outcome,
            )
            for a, d in zip(accounts, deals, strict=True)
        ],
        columns=[
            "deal_id",
            "stage",
            "amount",
            "currency",
            "owner_id",
            "account_id",
            "created_at",
            "closed_at",
            "product",
            "stage_entered_at",
            "outcome",
        ],
    )
    await conn.copy_records_to_table(
        "deal_stages",
        records=[(d.deal_id, s, at) for d in deals for s, at in dict(d.stages).items()],
        columns=["deal_id", "stage", "first_seen_at"],
    )
    await conn.copy_records_to_table(
        "activity_stats",
        records=[
            ("deal", d.deal_id, d.activities, d.last_activity_at, d.last_activity_at)
            for d in deals
            if d.last_activity_at is not None
        ],
        columns=["subject_kind", "subject_id", "activities", "first_at", "last_at"],
    )


@dataclass(frozen=True)
class RunTimes:
    open: int
    closed: int
    seconds: list[float]
    published: list[int]
    forecasts: list[int]


async def measure(n_open: int, n_closed: int) -> RunTimes:
    root = Path(tempfile.mkdtemp(prefix="salesops-bench-forecast-"))
    pg = EmbeddedPostgres(data_dir=root / "pg", port=free_port())
    pg.start()
    engine = None
    try:
        await wait_for_database(pg.url, DATABASE)
        dsn = database_dsn(pg.url, DATABASE)
        engine = create_engine(dsn)
        await migrate(engine, MIGRATIONS)
        conn = await asyncpg.connect(dsn)
        try:
            await load(conn, generate(n_closed, n_open))
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        uow, seconds, published, forecasts = UnitOfWork(engine), [], [], []
        for _ in range(2):
            started = time.perf_counter()
            async with uow() as session:
                run = await run_forecast(
                    session,
                    as_of=AS_OF,
                    fiscal_year_start_month=1,
                    currency="USD",
                    topics=Topics(""),
                )
            seconds.append(time.perf_counter() - started)
            published.append(run.published.deals if run.published else 0)
            forecasts.append(len(run.forecasts))
        return RunTimes(n_open, n_closed, seconds, published, forecasts)
    finally:
        if engine is not None:
            await engine.dispose()
        pg.stop()
        remove_tree(root)


def report(r: RunTimes) -> str:
    rows = [
        [
            f"run {i + 1}: {r.open:,} open deals, {r.closed:,} closed",
            f"{s:.1f}",
            f"{r.published[i]:,}",
            f"{r.forecasts[i]:,}",
        ]
        for i, s in enumerate(r.seconds)
    ]
    return "\n".join(
        [
            table(
                (
                    "whole run (`run_forecast`, committed)",
                    "seconds",
                    "deal.scored staged",
                    "forecasts",
                ),
                rows,
            ),
            "",
            "Read, fit (deal and lead models), score, forecast, store and stage the events "
            "in one transaction on an embedded PostgreSQL with fsync on; run 2 sees the same "
            "data and as-of time, so it publishes nothing new.",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.forecast_run", description=__doc__)
    p.add_argument("--open", type=int, default=100_000)
    p.add_argument("--closed", type=int, default=20_000)
    args = p.parse_args()
    print(report(asyncio.run(measure(args.open, args.closed))))


if __name__ == "__main__":
    main()
