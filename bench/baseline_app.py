"""The baseline: a bare FastAPI endpoint that parses a JSON body and answers 202, served by
the same uvicorn configuration as the services."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/v1/events", status_code=202)
async def accept(request: Request) -> Response:
    body: Any = await request.json()
    count = len(body) if isinstance(body, list) else 1
    return Response(b'{"accepted": %d}' % count, status_code=202, media_type="application/json")
