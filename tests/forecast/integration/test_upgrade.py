"""A database projected under schema 0001 gets from migration 0002 what the consumer now
keeps: each deal's time of entry into its current stage (from the stages it was seen in),
versioned like every field; then the service runs and scores on it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from salesops_common.db import create_engine, migrate
from salesops_common.events import Deal
from salesops_common.settings import database_dsn
from salesops_forecast.bootstrap import MIGRATIONS, create_app
from salesops_forecast.config import ForecastSettings
from tests.forecast.integration.test_scoring import crm, deliver
from tests.support import AUTH, Isolation, downgrade_to, running

pytestmark = pytest.mark.integration


def _history() -> list[Any]:
    """Deals that moved between stages, one updated without a stage change, one won."""
    events = []
    for n in range(3):
        deal = Deal(id=uuid.uuid4(), source="api", source_id=f"D{n}", amount=Decimal(10))
        events += [
            crm("deal.created", deal.model_copy(update={"stage": "Discovery"}), minute=n),
            crm("deal.stage_changed", deal.model_copy(update={"stage": "Proposal"}), minute=10),
            crm("deal.updated", deal.model_copy(update={"amount": Decimal(20)}), minute=20),
        ]
        if n == 0:
            events.append(crm("deal.won", deal.model_copy(update={"stage": "Won"}), minute=30))
    return events


async def _stage_entries(dsn: str) -> dict[uuid.UUID, tuple[Any, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT deal_id, stage_entered_at, field_times ->> 'stage_entered_at' AS t FROM deals"
        )
    finally:
        await conn.close()
    return {r["deal_id"]: (r["stage_entered_at"], r["t"]) for r in rows}


async def test_upgrading_from_0001_backfills_stage_entry_as_the_consumer_keeps_it(
    iso: Isolation,
) -> None:
    settings = ForecastSettings(
        database=iso.database("forecast"), run_interval_seconds=0, **iso.settings_kwargs()
    )
    dsn = database_dsn(iso.database_url, iso.database("forecast"))
    async with running(create_app(settings)) as client:
        await deliver(client, iso, _history())
    kept = await _stage_entries(dsn)
    assert len(kept) == 3
    assert all(at is not None for at, _ in kept.values())

    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(downgrade_to, MIGRATIONS, "0001")
            await conn.commit()
        conn_check = await asyncpg.connect(dsn)
        try:
            columns = await conn_check.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'deals'"
            )
        finally:
            await conn_check.close()
        assert "stage_entered_at" not in {c["column_name"] for c in columns}
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()

    upgraded = await _stage_entries(dsn)
    assert {k: v[0] for k, v in upgraded.items()} == {k: v[0] for k, v in kept.items()}
    assert all(t is not None for _, t in upgraded.values())  # versioned like other fields

    async with running(create_app(settings), consumers=False) as client:
        run = await client.post("/v1/forecasts/run", headers=AUTH)
        assert run.status_code == 201, run.text
        assert run.json()["scoring"]["deals_scored"] == 2
