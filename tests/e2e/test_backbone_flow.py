"""The backbone end to end through ``salesops up``: events posted to ingest come out as
assignments in routing, KPIs in metrics and a forecast, on the real PostgreSQL and broker."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from salesops_cli.infra import free_port, remove_tree
from tests.e2e.conftest import RunningStack, stack_env, start_stack, stop_stack
from tests.support import AUTH, Isolation, api_event, eventually, read_topic

pytestmark = pytest.mark.e2e


REPS = [
    api_event(
        "rep.created",
        f"R{i}",
        {
            "name": f"Rep {i}",
            "email": f"r{i}@x.example",
            "active": True,
            "role": "rep",
            "team": "East",
        },
    )
    for i in range(3)
]
LEADS = [
    api_event(
        "lead.created", f"L{i}", {"email": f"buyer{i}@acme{i}.example", "company": f"Acme {i}"}
    )
    for i in range(9)
]


async def hire_reps(http: httpx.AsyncClient, urls: dict[str, str]) -> None:
    """Post the reps and wait until routing knows them: events about different entities
    may arrive in any order, and a lead that arrives first goes to the fallback queue."""
    assert (await http.post(urls["ingest"] + "/v1/events", json=REPS)).status_code == 202

    async def routing_knows_reps() -> bool:
        r = await http.get(urls["routing"] + "/v1/reps")
        return r.status_code == 200 and len(r.json()["reps"]) == len(REPS)

    await eventually(routing_knows_reps, within=60)


async def test_leads_posted_to_ingest_are_assigned_and_counted(
    stack: RunningStack, iso: Isolation
) -> None:
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as http:
        await hire_reps(http, stack.urls)
        resp = await http.post(stack.urls["ingest"] + "/v1/events", json=LEADS)
        assert resp.status_code == 202, resp.text
        lead_ids = [r["entity_id"] for r in resp.json()["results"]]

        assigned = await read_topic(
            iso.bootstrap,
            iso.topic("salesops.routing.v1"),
            until=lambda seen: {e.data["lead_id"] for e in seen} >= set(lead_ids),
            within=60,
        )
        reps = {e.data["lead_id"]: e.data["rep_id"] for e in assigned}
        assert len(set(reps.values())) == 3  # the rotation used every rep

        async def assignment() -> dict[str, object] | None:
            r = await http.get(f"{stack.urls['routing']}/v1/assignments/{lead_ids[0]}")
            return r.json() if r.status_code == 200 else None

        shown = await eventually(assignment)
        assert shown["rep_id"] == reps[lead_ids[0]]
        assert shown["explanation"]

        async def leads_assigned() -> bool:
            r = await http.get(stack.urls["metrics"] + "/v1/kpis")
            kpis = {k["kpi"]: k for k in r.json()["kpis"]}
            return bool(kpis["leads_assigned"]["value"] == 9)

        await eventually(leads_assigned, within=30)

        async def scraped() -> bool:  # /metrics shows the newest snapshot
            scrape = (await http.get(stack.urls["metrics"] + "/metrics")).text
            return "salesops_metrics_leads_assigned_total 9.0" in scrape

        await eventually(scraped, within=10)
        assert (await http.get(stack.urls["ingest"] + "/v1/events")).status_code == 405


async def test_deals_give_a_win_rate_and_a_published_forecast(
    stack: RunningStack, iso: Isolation
) -> None:
    rep = api_event("rep.created", "R1", {"name": "Rep", "active": True, "team": "West"})
    # Closed in the current month whatever the day: a forecast's point includes the period's
    # bookings so far.
    today = datetime.now(UTC)
    this_month = datetime(today.year, today.month, 1, tzinfo=UTC).isoformat()
    deals = []
    for i, outcome in enumerate(["won", "won", "lost", "won"]):
        deals.append(
            api_event(
                "deal.created",
                f"D{i}",
                {"amount": "1000", "currency": "USD", "stage": "Engaging", "owner_source_id": "R1"},
            )
        )
        deals.append(
            api_event(
                f"deal.{outcome}",
                f"D{i}",
                {
                    "stage": outcome.title(),
                    "amount": "1000",
                    "currency": "USD",
                    "closed_at": this_month,
                },
            )
        )
    deals.append(
        api_event(
            "deal.created",
            "OPEN",
            {"amount": "2000", "currency": "USD", "stage": "Prospecting", "owner_source_id": "R1"},
        )
    )
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as http:
        assert (
            await http.post(stack.urls["ingest"] + "/v1/events", json=[rep, *deals])
        ).status_code == 202

        async def win_rate() -> float | None:
            r = await http.get(stack.urls["metrics"] + "/v1/kpis", params={"kpi": "win_rate"})
            value = r.json()["values"][0]["value"]
            return float(value) if value is not None and float(value) == 0.75 else None

        await eventually(win_rate, within=60)

        async def forecast() -> dict[str, object] | None:
            r = await http.post(stack.urls["forecast"] + "/v1/forecasts/run")
            body = r.json()
            if r.status_code != 201:
                return None
            company = [f for f in body["forecasts"] if f["scope"]["kind"] == "company"]
            # Once the open deal is counted (the closed ones alone already book 3,000).
            return company[0] if company and company[0]["deals"] >= 1 else None

        company = await eventually(forecast, within=60)
        # Won this month 3 × 1,000; 3 of 4 closed deals won, and with no stage history
        # P(win) = 0.75 for the open 2,000.
        assert float(company["point"]) == pytest.approx(3000.0 + 1500.0)
        published = await read_topic(
            iso.bootstrap,
            iso.topic("salesops.forecast.v1"),
            until=lambda seen: any(e.type == "forecast.published" for e in seen),
            within=30,
        )
        forecasts = [e for e in published if e.type == "forecast.published"]
        assert forecasts[0].data["currency"] == "USD"


async def test_a_fully_embedded_stack_starts_and_stops_leaving_nothing_behind() -> None:
    """`make run`'s path: no database URL and no broker given, so `salesops up` starts both."""
    home = Path(tempfile.mkdtemp(prefix="salesops-embedded-"))
    env, urls = stack_env(None, home)
    env["SALESOPS_DEV_POSTGRES_PORT"] = str(free_port())
    env["SALESOPS_DEV_BROKER_PORT"] = str(free_port())
    stack = start_stack(env, urls, home)
    try:
        headers = {"Authorization": "Bearer e2e-token"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            await hire_reps(http, urls)
            resp = await http.post(urls["ingest"] + "/v1/events", json=LEADS)
            assert resp.status_code == 202
            lead_id = resp.json()["results"][-1]["entity_id"]

            async def assigned() -> bool:
                r = await http.get(f"{urls['routing']}/v1/assignments/{lead_id}")
                return r.status_code == 200 and r.json()["rep_id"] is not None

            await eventually(assigned, within=60)
    finally:
        left = stop_stack(stack)
    assert left == []
    assert (home / "postgres" / "pgdata" / "PG_VERSION").exists()
    remove_tree(home)
