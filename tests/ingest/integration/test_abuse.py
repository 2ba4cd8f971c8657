"""Abuse of the HTTP surface, against ingest served by a real uvicorn on loopback (the options
``salesops serve`` uses): oversized and deeply nested JSON, slow bodies (slow-loris), header
floods, invalid UTF-8, formulas in CSV imports (CSV injection) and SQL metacharacters in every
string field. Each bad request gets a clear 4xx JSON error and changes nothing; the server
goes on serving."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from salesops_cli.main import SERVER_OPTIONS
from salesops_common.envelope import Envelope
from salesops_common.events import CRM_TOPIC
from salesops_ingest.bootstrap import create_app
from tests.ingest.integration.crm_support import ingest_settings, sign_v3
from tests.support import AUTH, TOKEN, Isolation, api_event, read_topic, without_consumers

pytestmark = pytest.mark.integration

MAX_BATCH_BYTES = 256 * 1024
WEBHOOK_MAX_BYTES = 64 * 1024
# Slow bodies: after 1 s, a body must come at 1 KiB/s on average.
BODY_GRACE, BODY_MIN_RATE = 1.0, 1024.0
PD_USER, PD_PASSWORD = "pipedrive-hook", "pipedrive-password"
PD_BASIC = "Basic " + base64.b64encode(f"{PD_USER}:{PD_PASSWORD}".encode()).decode()


@dataclass
class Served:
    iso: Isolation
    host: str
    port: int
    client: httpx.AsyncClient

    async def raw(self, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(request)
        await writer.drain()
        return reader, writer

    def hubspot(self, body: bytes) -> dict[str, str]:
        """A valid HubSpot v3 signature of ``body`` sent to this server."""
        return sign_v3(body, url=f"http://{self.host}:{self.port}/webhooks/hubspot")

    async def alive(self) -> None:
        """The server still answers (after an abusive request)."""
        resp = await self.client.get("/healthz")
        assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
async def served(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> AsyncIterator[Served]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    settings = ingest_settings(
        iso,
        max_batch_bytes=MAX_BATCH_BYTES,
        webhook_max_bytes=WEBHOOK_MAX_BYTES,
        http_body_grace_seconds=BODY_GRACE,
        http_body_min_rate=BODY_MIN_RATE,
        pipedrive_user=PD_USER,
        pipedrive_password=PD_PASSWORD,
    )
    app = without_consumers(create_app(settings))
    host, port = "127.0.0.1", free_port()
    options = {k: v for k, v in SERVER_OPTIONS.items() if k != "loop"}  # the test's own loop
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=60) as client:
            yield Served(iso, host, port, client)
    finally:
        server.should_exit = True
        await task


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    return error


async def stored_deliveries(served: Served) -> int:
    """What ingest archived: every accepted request is one delivery or part of one."""
    resp = await served.client.get("/v1/deliveries/status", headers=AUTH)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["archived"])


# ------------------------------------------------------------------------------------------
# Oversized and deeply nested JSON


async def test_an_oversized_body_is_refused_413_while_streaming(served: Served) -> None:
    before = await stored_deliveries(served)
    event = api_event("lead.created", "big", {"company": "x" * MAX_BATCH_BYTES})
    resp = await served.client.post("/v1/events", json=event, headers=AUTH)
    assert_error(resp, 413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for _ in range(MAX_BATCH_BYTES // 1024 + 2):
            yield b" " * 1024

    resp = await served.client.post("/v1/events", content=chunks(), headers=AUTH)
    assert_error(resp, 413, "too_large")
    webhook = b"[" + b" " * WEBHOOK_MAX_BYTES + b"]"
    resp = await served.client.post(
        "/webhooks/hubspot", content=webhook, headers=served.hubspot(webhook)
    )
    assert_error(resp, 413, "too_large")
    assert await stored_deliveries(served) == before
    await served.alive()


@pytest.mark.parametrize("depth", [100, 5_000])
async def test_deeply_nested_json_is_refused(served: Served, depth: int) -> None:
    before = await stored_deliveries(served)
    nested = "[" * depth + "]" * depth
    # As a whole body (past orjson's depth limit: not JSON to it) ...
    resp = await served.client.post(
        "/v1/events", content=nested, headers={**AUTH, "content-type": "application/json"}
    )
    assert resp.status_code in (400, 422), resp.text
    assert_error(resp, resp.status_code, "malformed" if resp.status_code == 400 else "invalid")
    # ... and inside an event's data (an unknown field).
    body = orjson.dumps(api_event("lead.created", "nested")).replace(
        b'"data":{', b'"data":{"deep":' + nested.encode() + b","
    )
    resp = await served.client.post(
        "/v1/events", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert resp.status_code in (400, 422), resp.text
    assert_error(resp, resp.status_code, "malformed" if resp.status_code == 400 else "invalid")
    assert await stored_deliveries(served) == before


# ------------------------------------------------------------------------------------------
# Slow bodies (slow-loris)


def _head(path: str, length: int, *extra: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: svc",
        f"Authorization: Bearer {TOKEN}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, orjson.loads(await reader.readexactly(length))


async def _closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection after its answer (within 30 s)."""
    try:
        async with asyncio.timeout(30):
            return await reader.read() == b""
    except ConnectionResetError:  # it closed while bytes of ours were still on the way
        return True


@pytest.mark.parametrize("path", ["/v1/events", "/webhooks/hubspot", "/v1/imports?kind=lead"])
async def test_a_body_trickling_in_is_cut_with_408(served: Served, path: str) -> None:
    """One byte every 50 ms (20 bytes/s) of a 60 kB body would take most of an hour: the
    server answers 408 once the body falls behind the minimum rate, and closes the
    connection."""
    reader, writer = await served.raw(_head(path, 60_000))
    answer = asyncio.ensure_future(_answer(reader))
    try:
        for _ in range(60_000):
            if answer.done():
                break
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
        status, body = await answer
        assert status == 408, body
        assert body["error"]["code"] == "timeout", body
        assert await _closed(reader), "the connection was not closed"
    finally:
        writer.close()
    await served.alive()


async def test_a_silent_body_is_cut_with_408(served: Served) -> None:
    reader, writer = await served.raw(_head("/v1/events", 10))
    try:
        status, body = await _answer(reader)
        assert status == 408, body
        assert body["error"]["code"] == "timeout"
        assert await _closed(reader), "the connection was not closed"
    finally:
        writer.close()


async def test_a_fast_body_is_not_cut(served: Served) -> None:
    """The rate is an average from the request's start: a body sent at speed after a pause
    under the grace goes through."""
    body = orjson.dumps(api_event("lead.created", "fast", {"company": "y" * 100_000}))
    reader, writer = await served.raw(_head("/v1/events", len(body)))
    try:
        await asyncio.sleep(BODY_GRACE / 2)
        writer.write(body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 202"), head


# ------------------------------------------------------------------------------------------
# Header floods and invalid UTF-8


async def test_a_header_flood_is_refused_and_the_server_goes_on(served: Served) -> None:
    before = await stored_deliveries(served)
    lead = orjson.dumps(api_event("lead.created", "flood"))
    big = [f"X-Flood-{i}: {'v' * 1000}" for i in range(60)]  # 60 kB of headers
    many = [f"X-Many-{i}: v" for i in range(500)]  # many small ones
    for flood in (big, many):
        reader, writer = await served.raw(_head("/v1/events", len(lead), *flood) + lead)
        try:
            status, body = await _answer(reader)
            assert status == 431, body
            assert body["error"]["code"] == "headers_too_large", body
            assert await _closed(reader), "the connection was not closed"
        finally:
            writer.close()
        await served.alive()
    assert await stored_deliveries(served) == before


async def test_invalid_utf8_is_refused_with_a_json_error(served: Served) -> None:
    before = await stored_deliveries(served)
    bad = b'{"type": "lead.created", "source_event_id": "\xff\xfe", "data": {}}'
    resp = await served.client.post(
        "/v1/events", content=bad, headers={**AUTH, "content-type": "application/json"}
    )
    assert_error(resp, 400, "malformed")
    resp = await served.client.post(
        "/webhooks/pipedrive",
        content=b'{"meta": {"id": "\xff"}, "data": {}}',
        headers={"Authorization": PD_BASIC, "content-type": "application/json"},
    )
    assert_error(resp, 400, "malformed")
    # A header that is not UTF-8 (nor ASCII): the token cannot match.
    reader, writer = await served.raw(
        b"GET /v1/quality HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
    )
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head
    # In a query string.
    resp = await served.client.get("/v1/entities?source=api&source_id=%FF%FE", headers=AUTH)
    assert resp.status_code in (400, 404, 422), resp.text
    assert await stored_deliveries(served) == before


# ------------------------------------------------------------------------------------------
# CSV injection and SQL metacharacters

SQL_NASTIES = [
    "Robert'); DROP TABLE entities;--",
    "O'Brien \" ; -- /* */ \\ %_ $1 ?",
    "x' Or '1'='1",
    "x'::text; SELECT pg_sleep(10); --",
    "Ünïcödé 'quoted' \\x00 E'\\\\'",
]


async def _published(served: Served, source_id: str, kind: str = "lead") -> Envelope:
    def has(events: list[Envelope]) -> bool:
        return any(e.data.get("source_id") == source_id for e in events)

    events = await read_topic(served.iso.bootstrap, served.iso.topic(CRM_TOPIC), until=has)
    found = [e for e in events if e.data.get("source_id") == source_id]
    assert found[0].type == f"{kind}.created", found
    return found[0]


async def test_formulas_in_a_csv_import_are_not_passed_on(served: Served) -> None:
    rows = [
        ["source_id", "first_name", "last_name", "company", "phone", "industry", "lead_source"],
        [
            "csv-f1",
            '=HYPERLINK("http://evil")',
            "+cmd|' /C calc'!A0",
            "@Sum(A1:A9)",
            "+1 415 555 0100",
            "-2+3",
            "Web",
        ],
        ["=1+1", "Ann", "Lee", "Acme", "", "", ""],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    resp = await served.client.post(
        "/v1/imports?kind=lead", content=out.getvalue().encode(), headers=AUTH
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 2, resp.text
    data = (await _published(served, "csv-f1")).data
    assert data["first_name"] == '\'=HYPERLINK("http://evil")'
    assert data["last_name"] == "'+cmd|' /C calc'!A0"
    assert data["company"] == "'@Sum(A1:A9)"
    assert data["industry"] == "'-2+3"
    assert data["phone"] == "+14155550100"  # a phone number is not a formula
    assert data["lead_source"] == "Web"
    assert (await _published(served, "'=1+1")).data["first_name"] == "Ann"
    for event in await read_topic(served.iso.bootstrap, served.iso.topic(CRM_TOPIC)):
        for value in event.data.values():
            assert not (isinstance(value, str) and value[:1] in "=@"), event


@pytest.mark.parametrize("nasty", SQL_NASTIES)
async def test_sql_metacharacters_are_stored_and_returned_verbatim(
    served: Served, nasty: str
) -> None:
    source_id = "sql-" + nasty
    fields = {
        "first_name": "Ann " + nasty,
        "last_name": "Lee " + nasty,
        "company": nasty,
        "region": nasty,
        "industry": nasty,
        "lead_source": nasty,
    }
    event = api_event(
        "lead.created", source_id, fields, source_event_id=nasty, tenant="t" + nasty[:20]
    )
    resp = await served.client.post("/v1/events", json=event, headers=AUTH)
    assert resp.status_code == 202, resp.text
    data = (await _published(served, source_id)).data
    assert {k: data.get(k) for k in fields} == fields
    assert data["tenant"] == "t" + nasty[:20]
    found = await served.client.get(
        "/v1/entities",
        params={"source": "api", "source_id": source_id, "tenant": "t" + nasty[:20]},
        headers=AUTH,
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == data["id"]
    # The same event again is a duplicate by its (metacharacter) source_event_id.
    again = await served.client.post("/v1/events", json=event, headers=AUTH)
    assert again.status_code == 202, again.text
    assert again.json()["results"][0]["status"] == "duplicate", again.text
