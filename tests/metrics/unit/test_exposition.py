"""What metrics exposes, with the database faked at its port (the snapshot loader)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from salesops_common.events import EVENT_TYPES
from salesops_common.http import install_error_handlers, token_guard
from salesops_metrics.adapters.prometheus import KpiCollector, SnapshotLoader
from salesops_metrics.domain.kpis import Snapshot
from salesops_metrics.entrypoints.api import build_router
from salesops_metrics.entrypoints.consumer import handlers

pytestmark = pytest.mark.unit
NO_DATA = Snapshot()
SOME = Snapshot(
    deals_won=3,
    deals_lost=1,
    leads_assigned=2,
    events_by_type={"deal.won": 3, "deal.lost": 1, "io.elsewhere.thing": 7},
)


def loader(snap: Snapshot) -> SnapshotLoader:
    async def load() -> Snapshot:
        return snap

    return load


async def scrape(snap: Snapshot) -> str:
    registry = CollectorRegistry()
    collector = KpiCollector(loader(snap))
    registry.register(collector)
    await collector.refresh()
    return generate_latest(registry).decode()


def test_every_known_event_type_has_a_handler() -> None:
    assert set(handlers()) == set(EVENT_TYPES)


async def test_no_closed_deal_is_nan_on_metrics_not_zero() -> None:
    text = await scrape(NO_DATA)
    assert "salesops_metrics_win_rate_ratio NaN" in text
    assert "salesops_metrics_deals_won_total 0.0" in text


async def test_metrics_show_kpis_and_events_by_known_type_only() -> None:
    text = await scrape(SOME)
    assert "salesops_metrics_win_rate_ratio 0.75" in text
    assert "salesops_metrics_deals_lost_total 1.0" in text
    assert "salesops_metrics_leads_assigned_total 2.0" in text
    assert 'salesops_metrics_events_total{type="deal.won"} 3.0' in text
    assert 'salesops_metrics_events_total{type="lead.created"} 0.0' in text
    assert "io.elsewhere.thing" not in text
    assert text.count("salesops_metrics_events_total{") == len(EVENT_TYPES)


async def test_nothing_is_exposed_before_the_first_read() -> None:
    registry = CollectorRegistry()
    registry.register(KpiCollector(loader(SOME)))
    assert "salesops_metrics_" not in generate_latest(registry).decode()


async def test_the_kpi_report_has_room_for_windows_and_groups() -> None:
    app = FastAPI()
    install_error_handlers(app)
    guard = token_guard(SecretStr("t"))
    app.include_router(build_router(load=loader(NO_DATA), require_token=guard))
    auth = {"Authorization": "Bearer t"}
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://svc") as client:
        report = (await client.get("/v1/kpis", params={"kpi": "win_rate"}, headers=auth)).json()
        unknown = await client.get("/v1/kpis", params={"kpi": "happiness"}, headers=auth)
    assert report["window"] == {"from": None, "to": None}
    assert report["group_by"] is None
    assert report["values"] == [
        {"group": {}, "value": None, "numerator": 0, "denominator": 0, "n": 0}
    ]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
