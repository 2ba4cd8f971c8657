"""Async database access: engine, database creation, unit of work, migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Result, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from salesops_common.settings import database_dsn, server_url, sqlalchemy_url

log = logging.getLogger(__name__)

# Any fixed number works: it only has to be the same for every copy of a service.
MIGRATION_LOCK_ID = 0x5A1E5095


async def ensure_database(url: str, database: str) -> None:
    """Create ``database`` on the server if it does not exist (idempotent, race-safe)."""
    conn = await asyncpg.connect(database_dsn(server_url(url), "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def create_engine(dsn: str, *, pool_size: int = 20) -> AsyncEngine:
    # No pre-ping: it costs a round trip per checkout on the hot path. A connection broken
    # by a server restart is invalidated on first use and the request answers 503.
    engine = create_async_engine(
        sqlalchemy_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_unfinished_transaction)
    return engine


def _refuse_unfinished_transaction(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A connection handed out must be outside any transaction. asyncpg marks a connection as
    inside a transaction before it sends BEGIN, and a cancellation while BEGIN is on its way
    (``driver.transaction()`` on the raw connection, which SQLAlchemy does not watch) leaves
    the mark and, once BEGIN ran, a transaction nobody ends: the next user's transaction
    became a SAVEPOINT in it ("SAVEPOINT can only be used in transaction blocks", or old
    data, or "read-only transaction"). Such a connection is replaced (no round trip: two
    attributes read)."""
    driver = record.driver_connection
    if driver is not None and (
        driver.is_in_transaction() or getattr(driver, "_top_xact", None) is not None
    ):
        raise DisconnectionError("connection returned inside a transaction")


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction:
    batch statements on the hot path skip SQLAlchemy's per-statement machinery."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
    return driver


def first_row(result: Result[Any]) -> dict[str, Any] | None:
    """The result's first row as a dict, or None when it has none."""
    found = result.first()
    return dict(found._mapping) if found else None


class UnitOfWork:
    """One transaction: the entrypoint commits; handlers and repositories never do."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session


def _upgrade(sync_conn: Connection, script_location: Path) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    script = ScriptDirectory.from_config(cfg)

    def upgrade(rev: object, context: object) -> object:
        return script._upgrade_revs("head", rev)  # type: ignore[arg-type]

    with EnvironmentContext(cfg, script, fn=upgrade, destination_rev="head") as env:
        env.configure(connection=sync_conn, transactional_ddl=True)
        with env.begin_transaction():
            env.run_migrations()


async def migrate(engine: AsyncEngine, script_location: Path) -> None:
    """Bring the schema to head; an advisory lock keeps concurrent copies from racing."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            await conn.run_sync(_upgrade, script_location)
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            await conn.commit()


async def wait_for_database(url: str, database: str, *, attempts: int = 0) -> None:
    """Retry until the server answers: services start before PostgreSQL in some setups."""
    delay, tried = 0.2, 0
    while True:
        try:
            await ensure_database(url, database)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            tried += 1
            if attempts and tried >= attempts:
                raise
            log.warning("database not reachable yet: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@asynccontextmanager
async def read_snapshot(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A read-only transaction that sees one snapshot of the data (REPEATABLE READ), on the
    driver connection: a report made of several statements agrees with itself."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
        async with driver.transaction(isolation="repeatable_read", readonly=True):
            yield driver


@asynccontextmanager
async def read_snapshots(
    engine: AsyncEngine, count: int
) -> AsyncIterator[list[asyncpg.Connection]]:
    """``count`` connections in read-only transactions that all see the snapshot of the first
    (exported and imported, as pg_dump's workers do): a report may run its statements side
    by side and still agree with itself."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(read_snapshot(engine))
        conns = [first]
        exported = await first.fetchval("SELECT pg_export_snapshot()") if count > 1 else None
        for _ in range(count - 1):
            conn = await stack.enter_async_context(engine.connect())
            raw = await conn.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            await stack.enter_async_context(
                driver.transaction(isolation="repeatable_read", readonly=True)
            )
            await driver.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")
            conns.append(driver)
        yield conns
