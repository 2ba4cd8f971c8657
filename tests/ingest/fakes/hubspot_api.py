"""A local stand-in for HubSpot's CRM v3 API: a real HTTP server on a free 127.0.0.1 port.

    async with FakeHubSpot(token="t") as hs:
        hs.objects[("contact", "1")] = {"email": "a@b.example"}
        api = HubSpotApi("t", base_url=hs.base_url, ...)

Serves GET/PATCH ``/crm/v3/objects/{plural}/{id}``, POST ``/crm/v3/objects/{plural}/search``
(GT filter on the modified-date property, ascending sort, ``after`` offset paging) and GET
``/crm/v3/owners`` (``after`` paging, ``archived`` flag). Every request is logged in
``hs.requests``; ``hs.fail_next(n, status, retry_after)`` makes the next n requests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

PLURALS = {"contacts": "contact", "companies": "company", "deals": "deal"}
MODIFIED = {"contact": "lastmodifieddate", "company": "hs_lastmodifieddate"}
DEFAULT_UPDATED = "2024-01-01T00:00:00.000Z"


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class _Failure:
    status: int
    retry_after: str | None


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers (it runs inside the test's event loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _modified_property(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


def _ms(value: Any) -> int:
    text = str(value)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class FakeHubSpot:
    token: str = "test-token"
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    associations: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = field(
        default_factory=dict
    )
    archived: set[tuple[str, str]] = field(default_factory=set)
    owners: list[dict[str, Any]] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    base_url: str = ""
    _failures: list[_Failure] = field(default_factory=list)
    _server: _QuietServer | None = None
    _task: asyncio.Task[None] | None = None

    def fail_next(self, n: int = 1, status: int = 500, retry_after: str | None = None) -> None:
        """The next ``n`` requests (any endpoint, after the token check) answer ``status``."""
        self._failures.extend(_Failure(status, retry_after) for _ in range(n))

    def requests_to(self, method: str, path_prefix: str = "") -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- server -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeHubSpot:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = _QuietServer(config)
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

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def guard(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            self.requests.append(
                LoggedRequest(
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    headers=dict(request.headers),
                    json=orjson.loads(raw) if raw else None,
                )
            )
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"status": "error", "category": "INVALID_AUTH"}, 401)
            if self._failures:
                failure = self._failures.pop(0)
                headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                body = {"status": "error", "message": f"injected {failure.status}"}
                return JSONResponse(body, failure.status, headers=headers)
            response: Response = await call_next(request)
            return response

        @app.get("/crm/v3/objects/{plural}/{object_id}")
        async def get_object(plural: str, object_id: str, request: Request) -> Response:
            return self._object_answer(plural, object_id, request.query_params)

        @app.patch("/crm/v3/objects/{plural}/{object_id}")
        async def patch_object(plural: str, object_id: str, request: Request) -> Response:
            object_type = PLURALS.get(plural)
            if object_type is None:
                return JSONResponse({"message": "unknown object type"}, 400)
            key = (object_type, object_id)
            if key not in self.objects or key in self.archived:
                return JSONResponse({"message": "resource not found"}, 404)
            body = orjson.loads(await request.body())
            properties = body.get("properties") if isinstance(body, dict) else None
            if not isinstance(properties, dict):
                return JSONResponse({"message": "properties required"}, 400)
            self.objects[key].update(properties)
            return self._object_answer(plural, object_id, {})

        @app.post("/crm/v3/objects/{plural}/search")
        async def search(plural: str, request: Request) -> Response:
            object_type = PLURALS.get(plural)
            if object_type is None:
                return JSONResponse({"message": "unknown object type"}, 400)
            body = orjson.loads(await request.body())
            modified = _modified_property(object_type)
            floor: int | None = None
            for group in body.get("filterGroups") or ():
                for flt in group.get("filters") or ():
                    assert flt["propertyName"] == modified
                    assert flt["operator"] == "GT"
                    floor = int(flt["value"])
            rows = [
                (_ms(props.get(modified, DEFAULT_UPDATED)), object_id, props)
                for (kind, object_id), props in self.objects.items()
                if kind == object_type and (kind, object_id) not in self.archived
            ]
            rows = sorted(r for r in rows if floor is None or r[0] > floor)
            offset = int(body.get("after") or 0)
            limit = int(body.get("limit") or 10)
            page = rows[offset : offset + limit]
            wanted = body.get("properties") or []
            results = [
                {
                    "id": object_id,
                    "properties": {k: props.get(k) for k in wanted},
                    "updatedAt": props.get(modified, DEFAULT_UPDATED),
                    "archived": False,
                }
                for _, object_id, props in page
            ]
            answer: dict[str, Any] = {"total": len(rows), "results": results}
            if offset + limit < len(rows):
                answer["paging"] = {"next": {"after": str(offset + limit)}}
            return JSONResponse(answer)

        @app.get("/crm/v3/owners")
        async def owners(request: Request) -> Response:
            archived = request.query_params.get("archived", "false") == "true"
            rows = [o for o in self.owners if bool(o.get("archived")) == archived]
            offset = int(request.query_params.get("after") or 0)
            limit = int(request.query_params.get("limit") or 100)
            answer: dict[str, Any] = {"results": rows[offset : offset + limit]}
            if offset + limit < len(rows):
                answer["paging"] = {"next": {"after": str(offset + limit)}}
            return JSONResponse(answer)

        return app

    def _object_answer(self, plural: str, object_id: str, query: Any) -> Response:
        object_type = PLURALS.get(plural)
        if object_type is None:
            return JSONResponse({"message": "unknown object type"}, 400)
        key = (object_type, object_id)
        if key not in self.objects:
            return JSONResponse({"message": "resource not found"}, 404)
        if key in self.archived and query.get("archived") != "true":
            return JSONResponse({"message": "resource not found"}, 404)
        props = self.objects[key]
        wanted = [p for p in (query.get("properties") or "").split(",") if p]
        shown = {k: props.get(k) for k in wanted} if wanted else dict(props)
        updated = props.get(_modified_property(object_type), DEFAULT_UPDATED)
        answer: dict[str, Any] = {
            "id": object_id,
            "properties": shown,
            "createdAt": props.get("createdate", DEFAULT_UPDATED),
            "updatedAt": str(updated),
            "archived": key in self.archived,
        }
        assoc = [a for a in (query.get("associations") or "").split(",") if a]
        known = self.associations.get(key, {})
        if assoc and any(a in known for a in assoc):
            answer["associations"] = {a: {"results": known[a]} for a in assoc if a in known}
        return JSONResponse(answer)
