"""kill -9 of ingest after it committed events but before its relay published them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, free_port
from salesops_common.settings import database_dsn
from tests.common.integration.probe import effects, probe_runtime
from tests.e2e.conftest import ready
from tests.support import AUTH, Isolation, api_event, eventually

pytestmark = pytest.mark.e2e


@contextmanager
def frozen(broker: EmbeddedBroker) -> Iterator[None]:
    """The broker stops answering (connections hang) until the block ends."""
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)


def serve_ingest(iso: Isolation, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **iso.env(), "SALESOPS_INGEST_PORT": str(port)}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "salesops_cli.main", "serve", "ingest"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not ready(f"http://127.0.0.1:{port}"):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return process


async def unsent_rows(iso: Isolation) -> int:
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("ingest")))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        await conn.close()


async def test_events_committed_before_a_crash_are_published_after_restart_once_in_effect(
    iso: Isolation, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    port = free_port()
    consumer = probe_runtime(iso)
    await consumer.start()
    ingest = serve_ingest(iso, port, log)
    try:
        events = [api_event("lead.created", f"L{i}") for i in range(50)]
        with frozen(broker):
            async with httpx.AsyncClient(headers=AUTH, timeout=10) as http:
                resp = await http.post(f"http://127.0.0.1:{port}/v1/events", json=events)
            assert resp.status_code == 202
            ids = {r["event_id"] for r in resp.json()["results"]}
            assert await unsent_rows(iso) == 50  # committed, not yet published
            ingest.kill()  # SIGKILL: no shutdown code runs
            ingest.wait()
        ingest = serve_ingest(iso, port, log)

        async def all_applied() -> dict[str, int] | None:
            applied = await effects(consumer)
            return applied if ids <= set(applied) else None

        applied = await eventually(all_applied, within=90)
        assert {applied[i] for i in ids} == {1}
        assert await unsent_rows(iso) == 0
    finally:
        ingest.kill()
        ingest.wait()
        await consumer.stop()
