"""Scoring through the real forecast service, PostgreSQL and broker: CRM and routing events
in, a run, ``deal.scored`` and ``lead.scored`` out (only when a score moved materially), the
model's probabilities in the pipeline forecast with territory scopes, and the endpoints."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from salesops_common.envelope import Envelope
from salesops_common.events import (
    Account,
    AccountTerritoryAssigned,
    Activity,
    Deal,
    Lead,
    Rep,
    RulesetPublished,
)
from tests.support import AUTH, Isolation, eventually, publish, read_topic

pytestmark = pytest.mark.integration

CRM = "salesops.crm.v1"
ROUTING = "salesops.routing.v1"
FORECAST = "salesops.forecast.v1"
INGEST = "/ingest/api/default"
# Deterministic ids: which closed deals and leads are held out for calibration (id % 4)
# is then the same on every run of the test.
RNG = random.Random(42)
NOW = datetime.now(UTC)
T0 = NOW - timedelta(days=200)


def _id() -> UUID:
    return UUID(int=RNG.getrandbits(128))


def crm(type_name: str, data: Any, minute: float = 0) -> Envelope:
    return Envelope.of(type_name, data, source=INGEST, time=T0 + timedelta(minutes=minute))


class World:
    """Two reps (one in a territory only through the ruleset), an account placed in a
    territory, 80 closed deals whose product decides the odds (Pro: 32 of 40 won, Basic:
    8 of 40), 40 decided leads whose source decides theirs, and what is open now."""

    def __init__(self) -> None:
        self.anna, self.bob, self.manager = _id(), _id(), _id()
        self.account = _id()
        self.open_pro, self.open_basic = _id(), _id()
        self.webinar_lead, self.list_lead = _id(), _id()
        self.crm: list[Envelope] = []
        self.routing: list[Envelope] = []

    def build(self) -> World:
        for rep_id, name in ((self.anna, "anna"), (self.bob, "bob")):
            rep = Rep(
                id=rep_id,
                source="api",
                source_id=name,
                email=f"{name}@example.com",
                team="Field",
                manager_id=self.manager,
                active=True,
            )
            self.crm.append(crm("rep.created", rep))
        account = Account(
            id=self.account, source="api", source_id="acme", industry="Software", employees=900
        )
        self.crm.append(crm("account.created", account))
        for i in range(80):
            self._closed_deal(i)
        for i in range(40):
            self._decided_lead(i)
        self._open()
        ruleset = {"territories": [{"id": "south", "members": [{"email": "bob@example.com"}]}]}
        self.routing += [
            Envelope.of(
                "ruleset.published",
                RulesetPublished(ruleset_version=1, ruleset=ruleset),
                source="/routing",
                time=T0,
            ),
            Envelope.of(
                "account.territory_assigned",
                AccountTerritoryAssigned(
                    account_id=self.account, territory_id="north", ruleset_version=1
                ),
                source="/routing",
                time=T0,
            ),
        ]
        return self

    def _closed_deal(self, i: int) -> None:
        pro = i % 2 == 0
        won = (i // 2) % 5 != 0 if pro else (i // 2) % 5 == 0
        deal_id, created = _id(), T0 + timedelta(days=i)
        fields = dict(
            id=deal_id,
            source="api",
            source_id=f"D{i}",
            product="Pro" if pro else "Basic",
            amount=Decimal(1000),
            owner_id=self.anna if i % 3 else self.bob,
            created_at=created,
            stage="Proposal",
        )
        self.crm.append(crm("deal.created", Deal(**fields), minute=i))
        closed = Deal(
            **{**fields, "stage": "Closed Won" if won else "Closed Lost"},
            closed_at=created + timedelta(days=20 + i % 7),
        )
        self.crm.append(crm("deal.won" if won else "deal.lost", closed, minute=i + 0.5))

    def _decided_lead(self, i: int) -> None:
        webinar = i % 2 == 0
        lead = Lead(
            id=UUID(int=1000 + i),
            source="api",
            source_id=f"L{i}",
            lead_source="Webinar" if webinar else "Purchased List",
            country="DE",
        )
        self.crm.append(crm("lead.created", lead, minute=i))
        if not webinar:
            self.crm.append(crm("lead.disqualified", lead, minute=i + 1))
            return
        self.crm.append(crm("lead.converted", lead, minute=i + 1))
        deal = Deal(
            id=_id(),
            source="api",
            source_id=f"LD{i}",
            lead_id=lead.id,
            product="Pro",
            created_at=T0 + timedelta(days=i),
            stage="Closed Won",
            closed_at=T0 + timedelta(days=i + 30),
            owner_id=self.anna,
        )
        self.crm.append(crm("deal.won", deal, minute=i + 2))

    def _open(self) -> None:
        for deal_id, product, extra in (
            (self.open_pro, "Pro", {"account_id": self.account}),
            (self.open_basic, "Basic", {}),
        ):
            deal = Deal(
                id=deal_id,
                source="api",
                source_id=str(deal_id),
                product=product,
                amount=Decimal(1000),
                currency="USD",
                stage="Proposal",
                owner_id=self.bob,
                created_at=NOW - timedelta(days=5),
                **extra,
            )
            self.crm.append(crm("deal.created", deal, minute=200 * 24 * 60 - 60))
        for lead_id, source in ((self.webinar_lead, "Webinar"), (self.list_lead, "Purchased List")):
            lead = Lead(
                id=lead_id, source="api", source_id=str(lead_id), lead_source=source, country="DE"
            )
            self.crm.append(crm("lead.created", lead, minute=200 * 24 * 60 - 60))
        touch = Activity(
            id=_id(),
            source="api",
            source_id="A1",
            type="call",
            deal_id=self.open_pro,
            occurred_at=NOW - timedelta(days=1),
        )
        self.crm.append(crm("activity.logged", touch, minute=200 * 24 * 60 - 30))


async def applied(client: httpx.AsyncClient) -> int:
    for family in text_string_to_metric_families((await client.get("/metrics")).text):
        if family.name == "salesops_forecast_consumer_events":
            return int(sum(s.value for s in family.samples if s.labels.get("outcome") == "applied"))
    return 0


async def deliver(
    client: httpx.AsyncClient,
    iso: Isolation,
    crm_events: list[Envelope],
    routing_events: Sequence[Envelope] = (),
) -> None:
    before = await applied(client)
    await publish(iso.bootstrap, iso.topic(CRM), crm_events)
    if routing_events:
        await publish(iso.bootstrap, iso.topic(ROUTING), list(routing_events))
    expected = before + len(crm_events) + len(routing_events)

    async def all_applied() -> bool:
        return await applied(client) >= expected

    await eventually(all_applied, within=90)


def scored(events: list[Envelope], type_name: str) -> list[Envelope]:
    return [e for e in events if e.type == type_name]


async def test_a_run_scores_open_deals_and_leads_and_publishes_them_once(
    forecast: httpx.AsyncClient, iso: Isolation
) -> None:
    world = World().build()
    await deliver(forecast, iso, world.crm, world.routing)

    resp = await forecast.post("/v1/forecasts/run", headers=AUTH)
    assert resp.status_code == 201, resp.text
    run = resp.json()
    deal_model = run["scoring"]["deal_model"]
    assert deal_model["model"] == "logistic_regression_platt", deal_model
    assert deal_model["closed_deals"] == 100  # 80 closed deals and 20 converted leads' deals
    assert run["scoring"]["lead_model"]["model"] == "logistic_regression_platt", run["scoring"]
    assert (run["scoring"]["deal_scores_published"], run["scoring"]["lead_scores_published"]) == (
        2,
        2,
    )
    company = [f for f in run["forecasts"] if f["scope"]["kind"] == "company"]
    assert all(f["methods"] == {"win_model_pipeline": 1.0} for f in company)
    territories = {f["scope"]["id"] for f in run["forecasts"] if f["scope"]["kind"] == "territory"}
    # The Pro deal's account is in north; the Basic deal has no account: its owner's (bob's)
    # primary territory in the ruleset.
    assert territories == {"north", "south"}

    events = await read_topic(
        iso.bootstrap,
        iso.topic(FORECAST),
        until=lambda seen: (
            len(scored(seen, "deal.scored")) >= 2 and len(scored(seen, "lead.scored")) >= 2
        ),
        within=60,
    )
    deals = {e.data["deal_id"]: e.data for e in scored(events, "deal.scored")}
    assert set(deals) == {str(world.open_pro), str(world.open_basic)}
    pro, basic = deals[str(world.open_pro)], deals[str(world.open_basic)]
    assert pro["win_probability"] > basic["win_probability"] + 0.2
    assert 0 <= pro["close_in_period_probability"] <= pro["win_probability"]
    leads = {e.data["lead_id"]: e.data for e in scored(events, "lead.scored")}
    webinar, bought = leads[str(world.webinar_lead)], leads[str(world.list_lead)]
    assert webinar["probability"] > bought["probability"] + 0.2
    assert webinar["reasons"][0].startswith("source webinar: ")

    shown = await forecast.get(f"/v1/deals/{world.open_pro}/forecast", headers=AUTH)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["win_probability"] == pytest.approx(pro["win_probability"], abs=1e-6)
    assert body["model"] == "logistic_regression_platt"
    assert body["run_id"] == run["run_id"] == body["model_version"]
    assert body["close_in"]["quarter"]["probability"] == pytest.approx(
        pro["close_in_period_probability"], abs=1e-6
    )
    assert any(r.startswith("product Pro: ") for r in body["reasons"]), body["reasons"]
    assert body["model_details"]["held_out_auc"] > 0.6
    lead = await forecast.get(f"/v1/leads/{world.webinar_lead}/score", headers=AUTH)
    assert lead.json()["probability"] == pytest.approx(webinar["probability"], abs=1e-6)
    for path in (f"/v1/deals/{uuid.uuid4()}/forecast", f"/v1/leads/{uuid.uuid4()}/score"):
        missing = await forecast.get(path, headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    assert (await forecast.get(f"/v1/deals/{world.open_pro}/forecast")).status_code == 401

    # Nothing changed: the next run keeps its scores but publishes none.
    again = (await forecast.post("/v1/forecasts/run", headers=AUTH)).json()
    assert (
        again["scoring"]["deal_scores_published"],
        again["scoring"]["lead_scores_published"],
    ) == (
        0,
        0,
    )
    # The Basic deal becomes a Pro deal: its odds move, and only it is published again.
    changed = Deal(id=world.open_basic, source="api", source_id="x", product="Pro")
    await deliver(forecast, iso, [crm("deal.updated", changed, minute=200 * 24 * 60)])
    third = (await forecast.post("/v1/forecasts/run", headers=AUTH)).json()
    assert third["scoring"]["deal_scores_published"] == 1
    events = await read_topic(
        iso.bootstrap,
        iso.topic(FORECAST),
        until=lambda seen: len(scored(seen, "deal.scored")) >= 3,
        within=60,
        settle=True,
    )
    deal_events = scored(events, "deal.scored")
    assert len(deal_events) == 3
    assert len(scored(events, "lead.scored")) == 2
    newest = (
        deal_events[-1].data if deal_events[-1].data["deal_id"] == str(world.open_basic) else None
    )
    republished = [e.data for e in deal_events if e.data["deal_id"] == str(world.open_basic)]
    assert len(republished) == 2
    assert max(r["win_probability"] for r in republished) > basic["win_probability"] + 0.2
    del newest
