"""What every service process runs beside its HTTP API: migrations at start, the outbox
relay and the consumers as tasks, and a clean stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from salesops_common.aio import stop_tasks
from salesops_common.db import UnitOfWork, create_engine, migrate, wait_for_database
from salesops_common.http import PlainRoute
from salesops_common.http import create_app as create_http_app
from salesops_common.inbox import ConsumerRunner, Handler
from salesops_common.kafka import (
    BrokerLossWatch,
    Topics,
    broker_reachable,
    new_producer,
    wait_for_broker,
)
from salesops_common.observability import ServiceMetrics, configure_logging
from salesops_common.outbox import OutboxRelay
from salesops_common.settings import CommonSettings, database_dsn

log = logging.getLogger(__name__)


class ServiceRuntime:
    """The composition of plumbing one service needs; built by the service's bootstrap."""

    def __init__(
        self,
        *,
        service: str,
        settings: CommonSettings,
        database: str,
        migrations: Path,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.database = database
        self.migrations = migrations
        self.dsn = database_dsn(settings.database_url, database)
        self.metrics = ServiceMetrics(service)
        self.topics = Topics(settings.kafka_topic_prefix)
        self.engine = create_engine(self.dsn)
        self.uow = UnitOfWork(self.engine)
        self.source = f"/{service}"
        self.relay = OutboxRelay(
            dsn=self.dsn,
            producer_factory=lambda: new_producer(
                settings.kafka_bootstrap, idempotence=settings.kafka_enable_idempotence
            ),
            metrics=self.metrics,
            retention=timedelta(hours=settings.outbox_retention_hours),
            broker_loss=BrokerLossWatch(
                bootstrap=settings.kafka_bootstrap,
                topics=self.topics.every(),
                marker=self.topics.physical(f"salesops.{service}.outbox-marker"),
                partitions=settings.kafka_partitions,
            ),
        )
        self.consumers: list[ConsumerRunner] = []
        self._consumer_options = consumer_options
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._on_start: list[Callable[[], Awaitable[None]]] = []

    def on_start(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run at start, after migrations and before consumers and workers (open pools)."""
        self._on_start.append(action)

    def add_worker(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """A background task of the service (a queue worker, a scheduler), started after
        migrations and cancelled first on stop: it must keep its progress in the database."""
        self._workers.append((f"{self.service}-{name}", run))

    def on_stop(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run at stop, after the workers are cancelled (close HTTP clients, pools)."""
        self._on_stop.append(action)

    def add_consumer(
        self,
        *,
        name: str,
        subscribe: Sequence[str],
        handlers: Mapping[str, Handler],
        max_records: int | None = None,
    ) -> ConsumerRunner:
        """``max_records``: the most records a batch (one transaction) takes, when that many
        are waiting (ConsumerRunner's default otherwise)."""
        more = {} if max_records is None else {"max_records": max_records}
        runner = ConsumerRunner(
            name=f"{self.service}.{name}",
            topics=self.topics,
            subscribe=subscribe,
            bootstrap=self.settings.kafka_bootstrap,
            group_id=f"salesops-{self.service}-{name}",
            uow=self.uow,
            handlers=handlers,
            metrics=self.metrics,
            source=self.source,
            consumer_options=self._consumer_options,
            **more,
        )
        self.consumers.append(runner)
        return runner

    async def start(self) -> None:
        await wait_for_database(self.settings.database_url, self.database)
        await migrate(self.engine, self.migrations)
        await wait_for_broker(
            self.settings.kafka_bootstrap,
            self.topics.every(),
            partitions=self.settings.kafka_partitions,
        )
        for action in self._on_start:
            await action()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.service}-relay"))
        for runner in self.consumers:
            self._tasks.append(asyncio.create_task(runner.run(), name=runner.name))
        for name, run in self._workers:
            self._worker_tasks.append(asyncio.create_task(_forever(name, run), name=name))
        log.info("%s started", self.service)

    async def stop(self, *, grace: float = 10.0, within: float = 30.0) -> None:
        """Workers first, then the consumers (``grace`` seconds to finish their batch), then
        the relay. Every step is bounded: a task that does not end within ``within``
        seconds is logged with its stack and left, so that a stop always ends."""
        await stop_tasks(self._worker_tasks, what="worker", within=within)
        self._worker_tasks.clear()
        for action in self._on_stop:
            try:
                async with asyncio.timeout(within):
                    await action()
            except Exception:
                log.exception("stop action failed")
        for runner in self.consumers:
            runner.stop()
        consumers = self._tasks[1:]
        if consumers:
            await asyncio.wait(consumers, timeout=grace)
        await stop_tasks(self._tasks, what="consumer or relay", within=within)
        self._tasks.clear()
        await self.relay.stop()
        await self.engine.dispose()

    async def database_ready(self) -> bool:
        async with self.engine.connect() as conn:
            async with asyncio.timeout(2.0):
                await conn.execute(text("SELECT 1"))
        return True

    async def broker_ready(self) -> bool:
        return await broker_reachable(self.settings.kafka_bootstrap)

    def checks(self) -> dict[str, Any]:
        return {"database": self.database_ready, "broker": self.broker_ready}

    def create_app(
        self,
        *,
        title: str,
        description: str,
        routers: Sequence[APIRouter],
        before_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
        exposition: Sequence[Callable[[], Awaitable[bytes]]] = (),
        plain_routes: Sequence[PlainRoute] = (),
    ) -> FastAPI:
        """The service's HTTP app, with this runtime as its lifespan, readiness and metrics
        (``plain_routes``: see ``salesops_common.http.create_app``)."""
        app = create_http_app(
            title=title,
            description=description,
            metrics=self.metrics,
            lifespan=self.lifespan(),
            routers=routers,
            checks=self.checks(),
            before_scrape=before_scrape,
            exposition=exposition,
            body_grace=self.settings.http_body_grace_seconds,
            body_min_rate=self.settings.http_body_min_rate,
            plain_routes=plain_routes,
        )
        app.state.runtime = self
        return app

    def lifespan(self) -> Any:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            configure_logging(self.settings.log_level)
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return lifespan


async def _forever(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Keep a worker running: an unexpected error is logged and the worker restarted."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s failed; restarting in 1 s", name)
            await asyncio.sleep(1.0)
