"""A local Salesforce REST API: a real HTTP server on 127.0.0.1 for the connector's tests.

``async with FakeSalesforce(token) as sf:`` serves, under ``sf.base_url``, what
:class:`~salesops_ingest.connectors.salesforce.SalesforceApi` calls: read, update and SOQL
query (the connector's query shape only) with ``nextRecordsUrl`` pagination. Records live in
``sf.records[(Type, Id)]``; every request is logged in ``sf.requests``; ``sf.fail_next(n,
status, retry_after)`` makes the next ``n`` requests fail first.

:class:`LocalApiServer` (uvicorn in a background task on a free port) is shared with the
Pipedrive fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave the test runner's signal handlers be
        yield


@dataclass
class LocalApiServer:
    """Base of the fakes: a FastAPI app served by uvicorn on a free 127.0.0.1 port."""

    requests: list[LoggedRequest] = field(default_factory=list, init=False)
    base_url: str = field(default="", init=False)
    _failures: deque[tuple[int, float | None]] = field(default_factory=deque, init=False)
    _server: _Server | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def fail_next(self, n: int, status: int, retry_after: float | None = None) -> None:
        """The next ``n`` requests answer ``status`` (with ``Retry-After`` if given)."""
        self._failures.extend([(status, retry_after)] * n)

    def build_app(self) -> FastAPI:
        raise NotImplementedError

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def _app(self) -> FastAPI:
        app = self.build_app()

        @app.middleware("http")
        async def log_and_fail(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            raw = await request.body()
            self.requests.append(
                LoggedRequest(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    {k.lower(): v for k, v in request.headers.items()},
                    orjson.loads(raw) if raw else None,
                )
            )
            if self._failures:
                status, retry_after = self._failures.popleft()
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                return JSONResponse({"error": "injected"}, status_code=status, headers=headers)
            return await call_next(request)

        return app

    async def __aenter__(self) -> Any:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off", access_log=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await self._task


def sf_time(moment: datetime) -> str:
    """A datetime as the Salesforce REST API writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


_QUERY = re.compile(
    r"SELECT (?P<fields>.+?) FROM (?P<type>\w+)"
    r"(?: WHERE SystemModstamp > (?P<since>\S+))?"
    r" ORDER BY SystemModstamp ASC LIMIT (?P<limit>\d+)"
)


def _sf_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse([{"errorCode": code, "message": message}], status_code=status)


@dataclass
class FakeSalesforce(LocalApiServer):
    token: str = "sf-token"
    api_version: str = "v60.0"
    page_size: int = 2000
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _clock: datetime = field(default=datetime(2024, 5, 1, 9, 0, tzinfo=UTC), init=False)
    _pages: dict[str, tuple[list[dict[str, Any]], int]] = field(default_factory=dict, init=False)

    async def __aenter__(self) -> FakeSalesforce:
        await super().__aenter__()
        return self

    def put(self, sobject: str, record_id: str, **fields: Any) -> dict[str, Any]:
        """Store a record; ``SystemModstamp`` defaults to one second after the last one."""
        if "SystemModstamp" not in fields:
            self._clock += timedelta(seconds=1)
            fields["SystemModstamp"] = sf_time(self._clock)
        record = {"Id": record_id, **fields}
        self.records[(sobject, record_id)] = record
        return record

    def _row(self, sobject: str, record: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
        url = f"/services/data/{self.api_version}/sobjects/{sobject}/{record['Id']}"
        chosen = record if names is None else {n: record.get(n) for n in names}
        return {"attributes": {"type": sobject, "url": url}, **chosen}

    def build_app(self) -> FastAPI:
        app = FastAPI()
        data = f"/services/data/{self.api_version}"

        @app.middleware("http")
        async def bearer(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return await call_next(request)

        @app.get(data + "/sobjects/{sobject}/{record_id}")
        async def read(sobject: str, record_id: str) -> Response:
            record = self.records.get((sobject, record_id))
            if record is None:
                return _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            return JSONResponse(self._row(sobject, record, None))

        @app.patch(data + "/sobjects/{sobject}/{record_id}")
        async def update(sobject: str, record_id: str, request: Request) -> Response:
            record = self.records.get((sobject, record_id))
            if record is None:
                return _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            changes = orjson.loads(await request.body())
            owner = changes.get("OwnerId")
            if owner is not None and not str(owner).startswith("005"):
                return _sf_error(
                    400, "FIELD_INTEGRITY_EXCEPTION", "Owner ID: id value of wrong type"
                )
            self._clock += timedelta(seconds=1)
            record.update(changes, SystemModstamp=sf_time(self._clock))
            return Response(status_code=204)

        @app.get(data + "/query")
        async def query(q: str) -> Response:
            match = _QUERY.fullmatch(q)
            if match is None:
                return _sf_error(400, "MALFORMED_QUERY", f"unexpected query: {q}")
            names = [n.strip() for n in match["fields"].split(",")]
            since = _parse(match["since"]) if match["since"] else None
            rows = sorted(
                (
                    record
                    for (sobject, _), record in self.records.items()
                    if sobject == match["type"]
                    and (since is None or _parse(record["SystemModstamp"]) > since)
                ),
                key=lambda r: _parse(r["SystemModstamp"]),
            )[: int(match["limit"])]
            return self._page([self._row(match["type"], r, names) for r in rows], len(rows))

        @app.get(data + "/query/{locator}")
        async def more(locator: str) -> Response:
            found = self._pages.pop(locator, None)
            if found is None:
                return _sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(*found)

        return app

    def _page(self, rows: list[dict[str, Any]], total: int) -> Response:
        first, rest = rows[: self.page_size], rows[self.page_size :]
        body: dict[str, Any] = {"totalSize": total, "done": not rest, "records": first}
        if rest:
            locator = f"01gFAKE{len(self.requests)}-{total - len(rest)}"
            self._pages[locator] = (rest, total)
            body["nextRecordsUrl"] = f"/services/data/{self.api_version}/query/{locator}"
        return JSONResponse(body)
