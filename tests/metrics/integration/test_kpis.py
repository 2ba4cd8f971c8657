"""KPIs from events, on the real PostgreSQL and broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, LeadAssigned
from salesops_metrics.bootstrap import create_app
from salesops_metrics.config import MetricsSettings
from tests.support import AUTH, Isolation, eventually, publish, running

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
CRM = "salesops.crm.v1"
ROUTING = "salesops.routing.v1"


@pytest.fixture
async def metrics(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(iso))) as client:
        yield client


def settings_for(iso: Isolation) -> MetricsSettings:
    return MetricsSettings(database=iso.database("metrics"), **iso.settings_kwargs())


def closed(outcome: str, deal_id: uuid.UUID | None = None, *, at: datetime = T0) -> Envelope:
    deal = Deal(
        id=deal_id or uuid.uuid4(),
        source="api",
        source_id=uuid.uuid4().hex,
        stage=outcome.title(),
        amount=Decimal("1000"),
        currency="USD",
        closed_at=at,
    )
    return Envelope.of(f"deal.{outcome}", deal, source="/ingest/api/default", time=at)


def assigned(
    lead_id: uuid.UUID, rep_id: uuid.UUID | None, *, hours: int = 0, again: bool = False
) -> Envelope:
    at = T0 + timedelta(hours=hours)
    fact = LeadAssigned(
        lead_id=lead_id, rep_id=rep_id, strategy="round_robin", reason="test", assigned_at=at
    )
    return Envelope.of("lead.reassigned" if again else "lead.assigned", fact, source="/routing")


async def kpi(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    resp = await client.get("/v1/kpis", params={"kpi": name}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    value: dict[str, Any] = resp.json()["values"][0]
    return value


async def listing_once(
    client: httpx.AsyncClient, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The KPI listing, once ``ready`` holds for it (the consumer group takes a while)."""

    async def probe() -> dict[str, Any] | None:
        resp = await client.get("/v1/kpis", headers=AUTH)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body if ready(body) else None

    result: dict[str, Any] = await eventually(probe, within=60)
    return result


def applied(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda body: sum(body["events_by_type"].values()) >= count


async def test_three_deals_won_and_one_lost_is_a_win_rate_of_three_quarters(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    events = [closed("won"), closed("won"), closed("won"), closed("lost")]
    await publish(iso.bootstrap, iso.topic(CRM), events)

    listing = await listing_once(metrics, applied(4))
    kpis = {k["kpi"]: k for k in listing["kpis"]}
    assert set(kpis) == {"win_rate", "deals_won", "deals_lost", "leads_assigned"}
    assert kpis["win_rate"]["value"] == 0.75
    assert (kpis["win_rate"]["numerator"], kpis["win_rate"]["denominator"]) == (3, 4)
    assert (kpis["deals_won"]["value"], kpis["deals_lost"]["value"]) == (3, 1)
    assert listing["events_by_type"] == {"deal.won": 3, "deal.lost": 1}
    report = await metrics.get("/v1/kpis", params={"kpi": "win_rate"}, headers=AUTH)
    assert report.json()["values"] == [
        {"group": {}, "value": 0.75, "numerator": 3, "denominator": 4, "n": 4}
    ]
    scrape = (await metrics.get("/metrics")).text
    assert "salesops_metrics_win_rate_ratio 0.75" in scrape
    assert "salesops_metrics_deals_won_total 3.0" in scrape
    assert "salesops_metrics_deals_lost_total 1.0" in scrape
    assert 'salesops_metrics_events_total{type="deal.won"} 3.0' in scrape
    assert 'salesops_metrics_events_total{type="deal.lost"} 1.0' in scrape


async def test_a_record_delivered_twice_counts_once(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    won = closed("won")
    await publish(iso.bootstrap, iso.topic(CRM), [won, won])  # likely one batch
    await listing_once(metrics, applied(1))
    marker = closed("lost")
    await publish(iso.bootstrap, iso.topic(CRM), [won, marker])  # after it was applied
    listing = await listing_once(metrics, lambda body: "deal.lost" in body["events_by_type"])

    assert listing["events_by_type"] == {"deal.won": 1, "deal.lost": 1}
    assert (await kpi(metrics, "deals_won"))["value"] == 1
    scrape = (await metrics.get("/metrics")).text
    assert 'salesops_metrics_events_total{type="deal.won"} 1.0' in scrape


async def test_a_newer_loss_replaces_a_win_and_a_late_older_win_changes_nothing(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    deal = uuid.uuid4()
    won = closed("won", deal, at=T0)
    lost_later = closed("lost", deal, at=T0 + timedelta(days=2))
    won_stale = closed("won", deal, at=T0 + timedelta(days=1))  # arrives last, is older
    await publish(iso.bootstrap, iso.topic(CRM), [won, lost_later, won_stale])

    await listing_once(metrics, applied(3))
    assert await kpi(metrics, "win_rate") == {
        "group": {},
        "value": 0,
        "numerator": 0,
        "denominator": 1,
        "n": 1,
    }
    assert (await kpi(metrics, "deals_lost"))["value"] == 1


async def test_leads_count_once_each_when_a_rep_holds_them(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    reassigned, direct, queued, rescued = (uuid.uuid4() for _ in range(4))
    events = [
        assigned(reassigned, uuid.uuid4()),
        assigned(reassigned, uuid.uuid4(), hours=1, again=True),
        assigned(direct, uuid.uuid4()),
        assigned(queued, None),  # the fallback queue: no rep yet
        assigned(rescued, None),
        assigned(rescued, uuid.uuid4(), hours=2, again=True),
    ]
    await publish(iso.bootstrap, iso.topic(ROUTING), events)

    listing = await listing_once(metrics, applied(6))
    assert listing["events_by_type"] == {"lead.assigned": 4, "lead.reassigned": 2}
    assert await kpi(metrics, "leads_assigned") == {
        "group": {},
        "value": 3,
        "numerator": 3,
        "denominator": None,
        "n": 3,
    }
    assert "salesops_metrics_leads_assigned_total 3.0" in (await metrics.get("/metrics")).text


async def test_kpis_need_the_token_and_no_data_is_null_not_zero(iso: Isolation) -> None:
    async with running(create_app(settings_for(iso)), consumers=False) as metrics:
        assert (await metrics.get("/v1/kpis")).status_code == 401
        wrong = await metrics.get("/v1/kpis", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "unauthenticated"
        unknown = await metrics.get("/v1/kpis", params={"kpi": "happiness"}, headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
        assert (await kpi(metrics, "win_rate"))["value"] is None
        scrape = await metrics.get("/metrics")  # open, as every service's
        assert scrape.status_code == 200
        assert "salesops_metrics_win_rate_ratio NaN" in scrape.text


async def test_two_copies_show_the_same_numbers(iso: Isolation) -> None:
    settings = settings_for(iso)
    async with running(create_app(settings)) as one, running(create_app(settings)) as two:
        events = [closed("won") for _ in range(30)] + [closed("lost") for _ in range(10)]
        await publish(iso.bootstrap, iso.topic(CRM), events)

        await listing_once(one, applied(40))
        assert await kpi(two, "win_rate") == await kpi(one, "win_rate")
        assert (await kpi(two, "win_rate"))["value"] == 0.75
        assert "salesops_metrics_win_rate_ratio 0.75" in (await two.get("/metrics")).text
        assert (
            'salesops_metrics_events_total{type="deal.won"} 30.0'
            in (await one.get("/metrics")).text
        )
