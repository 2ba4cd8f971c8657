"""The forecast service on the real PostgreSQL and broker: deal and rep events in, forecasts
out through the API and as ``forecast.published`` events."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, Rep
from tests.support import AUTH, Isolation, eventually, publish, read_topic

pytestmark = pytest.mark.integration

CRM = "salesops.crm.v1"
START = datetime.now(UTC) - timedelta(days=1)
TODAY = datetime.now(UTC).date()
NEXT_YEAR = TODAY + timedelta(days=400)
# Deals closed at the first instant of the current month: booked in this month and quarter
# whatever day the test runs.
MONTH_START = datetime(TODAY.year, TODAY.month, 1, tzinfo=UTC)
# forecast.published as the architecture lists it (scope compared on its own).
CONTRACT_FIELDS = (
    "forecast_id",
    "as_of",
    "period",
    "currency",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "categories",
    "methods",
)


def rep(rep_id: UUID, team: str) -> Envelope:
    data = Rep(id=rep_id, source="api", source_id=f"R-{team}", team=team, active=True)
    return Envelope.of("rep.created", data, source="/ingest/api/default", time=START)


def deal(type_name: str, deal_id: UUID, minute: int, **fields: Any) -> Envelope:
    data = Deal(id=deal_id, source="api", source_id=str(deal_id), **fields)
    at = START + timedelta(minutes=minute)
    return Envelope.of(type_name, data, source="/ingest/api/default", time=at)


def won_deal(owner: UUID) -> list[Envelope]:
    d = uuid.uuid4()
    return [
        deal("deal.created", d, 1, stage="Discovery", amount=Decimal(800), owner_id=owner),
        deal("deal.stage_changed", d, 2, stage="Proposal"),
        deal("deal.won", d, 3, stage="Closed Won", closed_at=MONTH_START),
    ]


def lost_deal(owner: UUID) -> list[Envelope]:
    d = uuid.uuid4()
    return [
        deal("deal.created", d, 1, stage="Discovery", amount=Decimal(900), owner_id=owner),
        deal("deal.lost", d, 2, stage="Closed Lost", closed_at=MONTH_START),
    ]


def open_deal(owner: UUID, stage: str, amount: int, closes: date | None, **extra: Any) -> Envelope:
    fields = {"currency": "USD", **extra}
    if closes is not None:
        fields["expected_close_date"] = closes
    return deal(
        "deal.created",
        uuid.uuid4(),
        5,
        stage=stage,
        amount=Decimal(amount),
        owner_id=owner,
        **fields,
    )


async def applied_events(client: httpx.AsyncClient) -> int:
    scrape = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(scrape):
        if family.name == "salesops_forecast_consumer_events":
            return int(
                sum(
                    s.value
                    for s in family.samples
                    if s.labels.get("outcome") == "applied" and s.labels.get("topic") == CRM
                )
            )
    return 0


async def publish_and_wait(
    client: httpx.AsyncClient, iso: Isolation, events: list[Envelope]
) -> None:
    await publish(iso.bootstrap, iso.topic(CRM), events)

    async def all_applied() -> bool:
        return await applied_events(client) >= len(events)

    # The first consumer group join on the dev broker takes a few seconds.
    await eventually(all_applied, within=60)


def by_scope(forecasts: list[dict[str, Any]], period_kind: str) -> dict[tuple[str, Any], Any]:
    return {
        (f["scope"]["kind"], f["scope"]["id"]): f
        for f in forecasts
        if f["period_kind"] == period_kind
    }


async def test_open_deals_are_forecast_with_odds_learned_from_closed_deals(
    forecast: httpx.AsyncClient, iso: Isolation
) -> None:
    east, west = uuid.uuid4(), uuid.uuid4()
    closed = [e for _ in range(3) for e in won_deal(east)]
    closed += [e for _ in range(2) for e in lost_deal(west)]
    pipeline = [
        open_deal(east, "Discovery", 1000, TODAY),
        open_deal(west, "Proposal", 1300, TODAY),
        open_deal(east, "Negotiation", 500, None),  # undated: counts in the current period
        open_deal(east, "Discovery", 5000, TODAY, currency="EUR"),  # no exchange rates yet
        open_deal(west, "Proposal", 700, NEXT_YEAR),  # outside both periods
    ]
    await publish_and_wait(
        forecast, iso, [rep(east, "East"), rep(west, "West"), *closed, *pipeline]
    )

    resp = await forecast.post("/v1/forecasts/run", headers=AUTH)
    assert resp.status_code == 201, resp.text
    first = resp.json()
    # 3 of 5 closed deals won: p̄ = 0.6. All 5 reached Discovery: (3 + 6) / (5 + 10) = 0.6.
    # Only the 3 winners reached Proposal: (3 + 6) / (3 + 10) = 9/13. Negotiation: no history.
    assert first["stage_probabilities"] == {
        "Discovery": 0.6,
        "Negotiation": 0.6,
        "Proposal": round(9 / 13, 6),
    }
    assert first["skipped_other_currency"] == 1
    assert len(first["forecasts"]) == 10  # month and quarter × company, 2 teams, 2 reps

    for period_kind in ("month", "quarter"):
        scopes = by_scope(first["forecasts"], period_kind)
        company = scopes[("company", None)]
        # Won this period: 3 × 800. Open: 0.6·1000 + 9/13·1300 + 0.6·500 = 600 + 900 + 300.
        # No month is complete yet: no series, nothing learned about deals not yet created.
        assert company["point"] == "4200.00"
        assert company["method_points"] == {"stage_weighted_pipeline": "4200.00"}
        # σ² = 0.24·1000² + (9/13)(4/13)·1300² + 0.24·500² = 660,000; σ = 812.40
        assert (company["lo80"], company["hi80"]) == ("3158.82", "5241.18")
        assert (company["lo95"], company["hi95"]) == ("2607.69", "5792.31")
        assert company["categories"] == {
            "commit": "0.00",
            "best_case": "2800.00",
            "pipeline": "2800.00",
        }
        assert company["methods"] == {"stage_weighted_pipeline": 1.0}
        assert company["currency"] == "USD"
        assert company["skipped_other_currency"] == 1
        assert scopes[("team", "East")]["point"] == "3300.00"  # 2400 won + 900
        assert scopes[("team", "West")]["point"] == "900.00"
        assert scopes[("rep", str(east))]["point"] == "3300.00"
        assert scopes[("rep", str(west))]["point"] == "900.00"

    await assert_published(iso, first["forecasts"], expected_total=10)

    second = (await forecast.post("/v1/forecasts/run", headers=AUTH)).json()
    latest = await forecast.get("/v1/forecasts", params={"scope_kind": "company"}, headers=AUTH)
    assert latest.status_code == 200
    shown = latest.json()["forecasts"]
    assert {f["period_kind"] for f in shown} == {"month", "quarter"}
    assert {f["run_id"] for f in shown} == {second["run_id"]}
    assert all(f["point"] == "4200.00" for f in shown)

    older_id = by_scope(first["forecasts"], "month")[("company", None)]["forecast_id"]
    older = await forecast.get(f"/v1/forecasts/{older_id}", headers=AUTH)
    assert older.status_code == 200
    assert older.json()["run_id"] == first["run_id"]  # earlier runs are kept
    await assert_published(iso, second["forecasts"], expected_total=20)

    scrape = (await forecast.get("/metrics")).text
    assert "salesops_forecast_runs_total 2.0" in scrape
    assert 'salesops_forecast_company_point_amount{period_kind="quarter"} 4200.0' in scrape


async def assert_published(
    iso: Isolation, forecasts: list[dict[str, Any]], *, expected_total: int
) -> None:
    events = await read_topic(
        iso.bootstrap,
        iso.topic("salesops.forecast.v1"),
        until=lambda seen: len(seen) >= expected_total,
        within=60,
    )
    published = {str(e.id): e for e in events}
    for shown in forecasts:
        event = published[shown["forecast_id"]]
        assert event.type == "forecast.published"
        assert event.source == "/forecast"
        assert event.subject == shown["forecast_id"]
        wire = {k: event.data[k] for k in CONTRACT_FIELDS}
        assert wire == {k: shown[k] for k in CONTRACT_FIELDS}
        # Envelope.of drops null fields: the company scope travels without an id.
        assert event.data["scope"].get("id") == shown["scope"]["id"]
        assert event.data["scope"]["kind"] == shown["scope"]["kind"]


async def test_an_older_deal_update_does_not_overwrite_newer_state(
    forecast: httpx.AsyncClient, iso: Isolation
) -> None:
    owner, open_id = uuid.uuid4(), uuid.uuid4()
    closed = [
        deal(
            "deal.won",
            uuid.uuid4(),
            1,
            stage="Closed Won",
            amount=Decimal(1),
            closed_at=MONTH_START,
        ),
        deal(
            "deal.lost",
            uuid.uuid4(),
            1,
            stage="Closed Lost",
            amount=Decimal(1),
            closed_at=MONTH_START,
        ),
    ]
    history = [
        deal(
            "deal.created",
            open_id,
            10,
            stage="Discovery",
            amount=Decimal(1000),
            owner_id=owner,
            expected_close_date=NEXT_YEAR,
        ),
        deal("deal.updated", open_id, 30, amount=Decimal(2000)),
        # Delivered late, from before the deal was even created: changes nothing known.
        deal("deal.updated", open_id, 5, amount=Decimal(500), stage="Lost Cause"),
        # Newer again: brings the deal into the current period.
        deal("deal.updated", open_id, 40, expected_close_date=TODAY),
    ]
    await publish_and_wait(forecast, iso, closed + history)

    resp = await forecast.post("/v1/forecasts/run", headers=AUTH)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # p̄ = 1/2 and Discovery has no closed history: 0.5 · 2000 (not 0.5 · 500), plus the 1
    # won this month.
    assert body["stage_probabilities"] == {"Discovery": 0.5}
    company = by_scope(body["forecasts"], "month")[("company", None)]
    assert company["point"] == "1001.00"
    assert company["categories"]["pipeline"] == "2000.00"


async def test_without_closed_deals_there_is_no_forecast(
    forecast: httpx.AsyncClient, iso: Isolation
) -> None:
    unauthenticated = await forecast.post("/v1/forecasts/run")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "unauthenticated"
    assert (await forecast.get("/v1/forecasts")).status_code == 401

    await publish_and_wait(forecast, iso, [open_deal(uuid.uuid4(), "Discovery", 100, TODAY)])
    refused = await forecast.post("/v1/forecasts/run", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "no_closed_deals"

    nothing = await forecast.get("/v1/forecasts", headers=AUTH)
    assert nothing.json() == {"forecasts": []}
    unknown = await forecast.get(f"/v1/forecasts/{uuid.uuid4()}", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
