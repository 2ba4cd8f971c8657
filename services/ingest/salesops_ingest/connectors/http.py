"""HTTP with retries, shared by the CRM API adapters (HubSpot, Salesforce, Pipedrive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from salesops_ingest.domain.records import CrmApiError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class RetryingClient:
    """An ``httpx.AsyncClient`` that retries up to ``attempts`` times on 408, 429, 5xx and
    transport errors, sleeping ``backoff_s``, 2x, 4x... (or the answer's ``Retry-After``,
    capped at ``max_retry_after_s``), then raises ``CrmApiError(retryable=True)``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """The first answer not worth retrying (the caller checks its status)."""
        last_status: int | None = None
        last_error = ""
        for attempt in range(self.attempts):
            delay = self.backoff_s * (2**attempt)
            try:
                response = await self._client.request(method, path, params=params, json=json_body)
            except httpx.TransportError as exc:
                last_status, last_error = None, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status not in (408, 429) and status < 500:
                    return response
                last_status, last_error = status, response.text[:200]
                delay = self._retry_after(response, delay)
            if attempt + 1 < self.attempts:
                log.debug("%s %s %s failed (%s); retrying", self.name, method, path, last_error)
                await self._sleep(delay)
        raise CrmApiError(
            f"{self.name} {method} {path} failed after {self.attempts} attempts: "
            f"{last_status or ''} {last_error}".strip(),
            retryable=True,
            status=last_status,
        )

    def _retry_after(self, response: httpx.Response, default: float) -> float:
        value = (response.headers.get("retry-after") or "").strip()
        if not value:
            return default
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                return default
        return min(max(seconds, 0.0), self.max_retry_after_s)

    def raise_for_status(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 300:
            return
        raise CrmApiError(
            f"{self.name} {what}: {response.status_code} {response.text[:200]}",
            retryable=False,
            status=response.status_code,
        )

    def json(self, response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise CrmApiError(
                f"{self.name} answered with a body that is not JSON",
                retryable=True,
                status=response.status_code,
            ) from None
