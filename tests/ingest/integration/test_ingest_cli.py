"""``salesops ingest replay|sync|dead-letters`` against a real ingest on a real port."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from salesops_cli.main import main
from salesops_ingest.bootstrap import create_app
from tests.ingest.integration.crm_support import count, ingest_settings
from tests.support import AUTH, TOKEN, Isolation, api_event, eventually, without_consumers

pytestmark = pytest.mark.integration


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def ingest_url(iso: Isolation) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = without_consumers(create_app(ingest_settings(iso)))  # the CLI consumes nothing
    server = _Server(uvicorn.Config(app, log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def cli(*argv: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("SALESOPS_API_TOKEN", TOKEN)
    out = io.StringIO()

    def run() -> int:
        with redirect_stdout(out):
            return main(list(argv))

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


async def test_replay_sync_and_dead_letters_from_the_command_line(
    ingest_url: str, iso: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        answer = await client.post(
            "/v1/events", json=[api_event("lead.created", "CLI-1")], headers=AUTH
        )
        assert answer.status_code == 202

    code, out = await cli(
        "ingest", "replay", "--since", since, "--url", ingest_url, monkeypatch=monkeypatch
    )
    assert code == 0
    assert out.startswith("1 archived deliveries queued")

    async def replayed() -> bool:
        return await count(iso, "SELECT count(*) FROM deliveries WHERE processed_at IS NULL") == 0

    await eventually(replayed)
    # Re-normalizing an unchanged delivery publishes nothing new.
    assert await count(iso, "SELECT count(*) FROM outbox") == 1

    code, out = await cli("ingest", "dead-letters", "--url", ingest_url, monkeypatch=monkeypatch)
    assert code == 0
    assert out.startswith("0 open dead letters")

    with pytest.raises(SystemExit, match="no CRM API is configured"):
        await cli("ingest", "sync", "--url", ingest_url, monkeypatch=monkeypatch)
