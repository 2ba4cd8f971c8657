"""A transaction whose BEGIN is cut short by a cancellation (a request or snapshot task
cancelled at the wrong moment): asyncpg marks the connection as inside the transaction
before it sends BEGIN and leaves the mark when BEGIN does not return, and the connection went
back to the pool that way. The next user's transaction became a SAVEPOINT: "SAVEPOINT can
only be used in transaction blocks" when the server had no transaction (seen in metrics'
snapshots under load), or, when the BEGIN had reached the server, a savepoint inside a
transaction that nobody ends (old data read for ever, its locks held). The pool must not
hand such a connection out again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from salesops_common.db import create_engine, ensure_database, read_snapshot
from salesops_common.settings import database_dsn
from tests.support import Isolation

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(iso: Isolation) -> AsyncIterator[AsyncEngine]:
    """One connection in the pool: the next transaction gets the one that was cut short."""
    database = iso.database("cancelled")
    await ensure_database(iso.database_url, database)
    engine = create_engine(database_dsn(iso.database_url, database), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS facts (n int)"))
    yield engine
    await engine.dispose()


async def _driver(engine: AsyncEngine) -> asyncpg.Connection:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
    return driver


async def _cancel_while_beginning(engine: AsyncEngine, use: Callable[[], Awaitable[Any]]) -> None:
    """Run ``use`` and cancel it while its BEGIN is on its way to the server."""
    driver = await _driver(engine)
    task = asyncio.ensure_future(use())
    while getattr(driver, "_top_xact", None) is None:  # set just before BEGIN is sent
        assert not task.done()
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _count(engine: AsyncEngine) -> Any:
    async with read_snapshot(engine) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM facts"))


async def _add_fact(engine: AsyncEngine) -> Any:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO facts VALUES (1)"))


@pytest.mark.parametrize("cut_short", ["read_snapshot", "session"])
async def test_a_transaction_cut_short_at_begin_leaves_no_trace_for_the_next(
    engine: AsyncEngine, cut_short: str
) -> None:
    before = await _count(engine)
    use = _count if cut_short == "read_snapshot" else _add_fact
    await _cancel_while_beginning(engine, lambda: use(engine))
    for added in range(1, 4):
        # Each read starts its own transaction and sees what was committed before it.
        await _add_fact(engine)
        assert await _count(engine) == before + added
    driver = await _driver(engine)
    assert not driver.is_in_transaction()
