"""KPIs from events on the real PostgreSQL and broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, LeadAssigned
from salesops_metrics.bootstrap import create_app
from salesops_metrics.config import MetricsSettings
from tests.support import AUTH, Isolation, eventually, publish, running

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture
async def metrics(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    settings = MetricsSettings(database=iso.database("metrics"), **iso.settings_kwargs())
    async with running(create_app(settings)) as client:
        yield client


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


async def kpi(client: httpx.AsyncClient, name: str) -> dict[str, object]:
    resp = await client.get("/v1/kpis", params={"kpi": name}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    value: dict[str, object] = resp.json()["values"][0]
    return value


async def test_three_deals_won_and_one_lost_is_a_win_rate_of_three_quarters(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    events = [closed("won"), closed("won"), closed("won"), closed("lost")]
    await publish(iso.bootstrap, iso.topic("salesops.crm.v1"), events)

    async def settled() -> dict[str, object] | None:
        value = await kpi(metrics, "win_rate")
        return value if value["denominator"] == 4 else None

    value = await eventually(settled, within=60)
    assert value == {"group": {}, "value": "0.7500", "numerator": 3, "denominator": 4, "n": 4}
    scrape = (await metrics.get("/metrics")).text
    assert "salesops_metrics_win_rate_ratio 0.75" in scrape
    assert "salesops_metrics_deals_won_total 3.0" in scrape
    assert 'salesops_metrics_events_total{type="deal.won"} 3.0' in scrape
    listing = (await metrics.get("/v1/kpis", headers=AUTH)).json()
    assert {k["kpi"] for k in listing["kpis"]} >= {"win_rate", "leads_assigned"}
    assert listing["events_by_type"] == {"deal.won": 3, "deal.lost": 1}


async def test_a_redelivered_outcome_counts_once_and_a_late_one_loses(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    deal_id = uuid.uuid4()
    won = closed("won", deal_id, at=T0)
    lost_later = closed("lost", deal_id, at=T0 + timedelta(days=2))
    won_stale = closed("won", deal_id, at=T0 + timedelta(days=1))  # arrives last, is older
    marker = closed("won")
    await publish(
        iso.bootstrap, iso.topic("salesops.crm.v1"), [won, won, lost_later, won_stale, marker]
    )

    async def settled() -> dict[str, object] | None:
        value = await kpi(metrics, "win_rate")
        return value if value["denominator"] == 2 else None

    value = await eventually(settled, within=60)
    assert (value["numerator"], value["denominator"]) == (1, 2)  # the deal ended lost
    counts = (await metrics.get("/v1/kpis", headers=AUTH)).json()["events_by_type"]
    assert counts == {"deal.won": 3, "deal.lost": 1}  # the duplicate record is not counted


async def test_leads_assigned_counts_distinct_leads_with_a_rep(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    rep, lead, queued = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def assigned(lead_id: uuid.UUID, rep_id: uuid.UUID | None, at: datetime) -> Envelope:
        fact = LeadAssigned(
            lead_id=lead_id, rep_id=rep_id, strategy="round_robin", reason="test", assigned_at=at
        )
        kind = "lead.assigned" if at == T0 else "lead.reassigned"
        return Envelope.of(kind, fact, source="/routing", time=at)

    events = [
        assigned(lead, rep, T0),
        assigned(lead, uuid.uuid4(), T0 + timedelta(hours=1)),
        assigned(queued, None, T0),
    ]
    await publish(iso.bootstrap, iso.topic("salesops.routing.v1"), events)

    async def settled() -> dict[str, object] | None:
        counts = (await metrics.get("/v1/kpis", headers=AUTH)).json()["events_by_type"]
        return counts if sum(counts.values()) == 3 else None

    await eventually(settled, within=60)
    assert (await kpi(metrics, "leads_assigned"))["value"] == 1


async def test_kpis_need_the_token_and_unknown_ones_are_404(metrics: httpx.AsyncClient) -> None:
    assert (await metrics.get("/v1/kpis")).status_code == 401
    resp = await metrics.get("/v1/kpis", params={"kpi": "happiness"}, headers=AUTH)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    scrape = (await metrics.get("/metrics")).text
    assert "salesops_metrics_win_rate_ratio NaN" in scrape  # no closed deal: no rate, not 0


async def test_two_copies_show_the_same_numbers(iso: Isolation) -> None:
    settings = MetricsSettings(database=iso.database("metrics"), **iso.settings_kwargs())
    async with running(create_app(settings)) as one, running(create_app(settings)) as two:
        await publish(
            iso.bootstrap,
            iso.topic("salesops.crm.v1"),
            [closed("won") for _ in range(30)] + [closed("lost") for _ in range(10)],
        )

        async def settled() -> dict[str, object] | None:
            value = await kpi(one, "win_rate")
            return value if value["denominator"] == 40 else None

        await eventually(settled, within=90)
        assert await kpi(two, "win_rate") == await kpi(one, "win_rate")
        assert "salesops_metrics_win_rate_ratio 0.75" in (await two.get("/metrics")).text
