"""Canonical events as ingest, routing and forecast publish them, and reading KPIs back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from salesops_common.envelope import Envelope
from salesops_common.events import CRM_TOPIC, FORECAST_TOPIC, ROUTING_TOPIC
from salesops_metrics.config import MetricsSettings
from tests.support import AUTH, TOKEN, Isolation, eventually, publish

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ADMIN_TOKEN = "admin-" + TOKEN
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def fixed_clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def metrics_settings(iso: Isolation, **overrides: Any) -> MetricsSettings:
    overrides.setdefault("exposition_window", "all")
    overrides.setdefault("admin_token", ADMIN_TOKEN)
    # A scrape shows everything committed before it: tests read /metrics right after REST.
    overrides.setdefault("scrape_staleness_ms", 0)
    return MetricsSettings(database=iso.database("metrics"), **iso.settings_kwargs(), **overrides)


TOPIC_OF = {"crm": CRM_TOPIC, "routing": ROUTING_TOPIC, "forecast": FORECAST_TOPIC}


async def publish_all(iso: Isolation, events: Iterable[Envelope]) -> None:
    """Each event to its own topic, in the given order per topic."""
    by_topic: dict[str, list[Envelope]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event)
    for topic, batch in by_topic.items():
        await publish(iso.bootstrap, iso.topic(topic), batch)


async def applied_total(client: httpx.AsyncClient) -> int:
    """How many events metrics has applied (duplicates are not applied twice)."""
    resp = await client.get("/v1/kpis", headers=AUTH)
    assert resp.status_code == 200, resp.text
    return sum(resp.json()["events_by_type"].values())


async def applied(client: httpx.AsyncClient, count: int, *, within: float = 60) -> None:
    """Wait until metrics has applied ``count`` events."""

    async def probe() -> bool:
        return await applied_total(client) >= count

    await eventually(probe, within=within, interval=0.2)


async def kpi(
    client: httpx.AsyncClient,
    name: str,
    *,
    group_by: str | None = None,
    window: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    params: dict[str, str] = {"kpi": name}
    if group_by:
        params["group_by"] = group_by
    if window:
        params["window"] = window
    if start:
        params["from"] = start.isoformat()
    if end:
        params["to"] = end.isoformat()
    resp = await client.get("/v1/kpis", params=params, headers=AUTH)
    assert resp.status_code == 200, resp.text
    values: list[dict[str, Any]] = resp.json()["values"]
    return values


def one(values: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(values) == 1, values
    return values[0]


def by_group(values: list[dict[str, Any]], key: str) -> dict[str | None, dict[str, Any]]:
    return {v["group"][key]: v for v in values}


def days(n: float) -> timedelta:
    return timedelta(days=n)
