"""A local Pipedrive API: a real HTTP server on 127.0.0.1 for the connector's tests.

``async with FakePipedrive(token) as pd:`` serves, under ``pd.base_url``, what
:class:`~salesops_ingest.connectors.pipedrive.PipedriveApi` calls: API v2 deals, persons,
organizations and activities (read, list by ``updated_since`` with cursor pagination, update),
API v1 leads (read, list with ``start``/``limit`` pagination, update) and users (read, list).
Requests need the ``x-api-token`` header. Records live in ``pd.records[(entity, id)]``
(entity as the webhooks name it: ``deal``, ``person``, ``lead``...); requests are logged in
``pd.requests``; ``pd.fail_next(n, status, retry_after)`` makes the next requests fail first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.ingest.fakes.salesforce_api import LocalApiServer

V2 = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "activities": "activity",
}


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _failure(status: int, error: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": error}, status_code=status)


def _ok(data: Any, additional: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return JSONResponse(body)


@dataclass
class FakePipedrive(LocalApiServer):
    token: str = "pd-token"
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _clock: datetime = field(default=datetime(2024, 5, 1, 9, 0, tzinfo=UTC), init=False)

    async def __aenter__(self) -> FakePipedrive:
        await super().__aenter__()
        return self

    def tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def put(self, entity: str, record_id: int | str, **fields: Any) -> dict[str, Any]:
        """Store a record; its modification time defaults to one second after the last one
        (``modified`` for users as API v1 writes it, ``update_time`` otherwise)."""
        if entity == "user":
            fields.setdefault("modified", self.tick().strftime("%Y-%m-%d %H:%M:%S"))
        else:
            fields.setdefault("update_time", self.tick().strftime("%Y-%m-%dT%H:%M:%SZ"))
        record = {"id": record_id, **fields}
        self.records[(entity, str(record_id))] = record
        return record

    def _of(self, entity: str) -> list[dict[str, Any]]:
        return [r for (e, _), r in self.records.items() if e == entity]

    def _patch(self, entity: str, record_id: str, changes: dict[str, Any]) -> Response:
        record = self.records.get((entity, record_id))
        if record is None:
            return _failure(404, f"{entity} not found")
        owner = changes.get("owner_id")
        if owner is not None and ("user", str(owner)) not in self.records:
            return _failure(400, "owner_id: user not found")
        record.update(changes, update_time=self.tick().strftime("%Y-%m-%dT%H:%M:%SZ"))
        return _ok(record)

    def build_app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def api_token(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.headers.get("x-api-token") != self.token:
                return _failure(401, "unauthorized access")
            return await call_next(request)

        @app.get("/api/v2/{plural}")
        async def list_v2(
            plural: str,
            updated_since: str | None = None,
            sort_by: str = "id",
            sort_direction: str = "asc",
            limit: int = 100,
            cursor: str | None = None,
        ) -> Response:
            if plural not in V2 or sort_by != "update_time" or sort_direction != "asc":
                return _failure(400, "unsupported listing")
            since = _parse(updated_since) if updated_since else None
            rows = sorted(
                (
                    r
                    for r in self._of(V2[plural])
                    if since is None or _parse(r["update_time"]) >= since
                ),
                key=lambda r: _parse(r["update_time"]),
            )
            start = int(cursor.removeprefix("c")) if cursor else 0
            page = rows[start : start + limit]
            following = f"c{start + limit}" if start + limit < len(rows) else None
            return _ok(page, {"next_cursor": following})

        @app.get("/api/v2/{plural}/{record_id}")
        async def read_v2(plural: str, record_id: str) -> Response:
            record = self.records.get((V2.get(plural, ""), record_id))
            return _ok(record) if record is not None else _failure(404, "not found")

        @app.patch("/api/v2/{plural}/{record_id}")
        async def update_v2(plural: str, record_id: str, request: Request) -> Response:
            changes = orjson.loads(await request.body())
            return self._patch(V2.get(plural, ""), record_id, changes)

        @app.get("/api/v1/leads")
        async def list_leads(sort: str = "", start: int = 0, limit: int = 100) -> Response:
            field_name, _, direction = sort.partition(" ")
            rows = self._of("lead")
            if field_name:
                rows.sort(key=lambda r: _parse(r[field_name]), reverse=direction == "DESC")
            page = rows[start : start + limit]
            more = start + limit < len(rows)
            return _ok(page, {"start": start, "limit": limit, "more_items_in_collection": more})

        @app.get("/api/v1/leads/{record_id}")
        async def read_lead(record_id: str) -> Response:
            record = self.records.get(("lead", record_id))
            return _ok(record) if record is not None else _failure(404, "Lead not found")

        @app.patch("/api/v1/leads/{record_id}")
        async def update_lead(record_id: str, request: Request) -> Response:
            return self._patch("lead", record_id, orjson.loads(await request.body()))

        @app.get("/api/v1/users")
        async def list_users() -> Response:
            return _ok(self._of("user"))

        @app.get("/api/v1/users/{record_id}")
        async def read_user(record_id: str) -> Response:
            record = self.records.get(("user", record_id))
            return _ok(record) if record is not None else _failure(404, "User not found")

        return app
