"""The Maven CRM sample as ingest events, checked against the shipped CSVs read on their own;
and the demo loader against a fake stack at the HTTP port."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import salesops_cli
from salesops_cli.demo import DemoError, Progress, Retry, run_demo, send_events
from salesops_cli.maven import DATA_DIR, MavenSummary, load_maven_events
from salesops_ingest.domain.model import ValidEvent, validate_events

SHIPPED = Path(salesops_cli.__file__).parent / "demo_data" / "maven-crm"
TODAY = date(2026, 11, 28)
NO_WAIT = Retry(tries=5, first_delay=0)
Event = dict[str, Any]


def table(name: str) -> list[dict[str, str]]:
    with open(SHIPPED / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def of_type(events: list[Event], *types: str) -> list[Event]:
    return [e for e in events if e["type"] in types]


def day_of(stamp: str) -> date:
    return datetime.fromisoformat(stamp).date()


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return load_maven_events(today=TODAY)


@pytest.fixture(scope="module")
def pipeline() -> list[dict[str, str]]:
    return table("sales_pipeline.csv")


@pytest.fixture(scope="module")
def newest_in_csv(pipeline: list[dict[str, str]]) -> date:
    dates = [r[k] for r in pipeline for k in ("engage_date", "close_date") if r[k]]
    return date.fromisoformat(max(dates))


# --- the transform --------------------------------------------------------------------------


@pytest.mark.unit
def test_the_sample_ships_inside_the_package() -> None:
    assert DATA_DIR == SHIPPED
    names = {p.name for p in SHIPPED.iterdir()}
    assert {"accounts.csv", "products.csv", "sales_pipeline.csv", "sales_teams.csv"} <= names
    assert "generated" in (SHIPPED / "README.md").read_text()


@pytest.mark.unit
def test_every_agent_and_every_manager_becomes_a_rep(events: list[Event]) -> None:
    teams = table("sales_teams.csv")
    reps = [e["data"] for e in of_type(events, "rep.created")]
    managers = [r for r in reps if r["role"] == "manager"]
    agents = [r for r in reps if r["role"] == "rep"]
    assert len(agents) == len(teams) == 35
    assert {m["name"] for m in managers} == {t["manager"] for t in teams}
    assert reps[: len(managers)] == managers  # managers first
    assert {a["team"] for a in agents} == {"Central", "East", "West"}
    offices = {"Central": "America/Chicago", "East": "America/New_York"}
    assert all(offices.get(r["team"], "America/Los_Angeles") == r["time_zone"] for r in reps)
    assert all(re.fullmatch(r"[a-z-]+\.[a-z-]+@maven-demo\.example", r["email"]) for r in reps)


@pytest.mark.unit
def test_accounts_keep_the_data_as_found(events: list[Event]) -> None:
    found = {e["data"]["name"]: e["data"] for e in of_type(events, "account.created")}
    assert len(found) == 85
    for row in table("accounts.csv"):
        account = found[row["account"]]
        assert account["industry"] == row["sector"]
        assert Decimal(account["annual_revenue"]) == Decimal(row["revenue"]) * 1_000_000
        assert account["employees"] == int(row["employees"])
        assert account["domain"].endswith(".example")
    assert "technolgy" in {a["industry"] for a in found.values()}
    assert found["Acme Corporation"]["annual_revenue"] == "1100040000.00"


@pytest.mark.unit
def test_one_deal_per_opportunity_and_one_outcome_per_closed_deal(
    events: list[Event], pipeline: list[dict[str, str]]
) -> None:
    stages = Counter(r["deal_stage"] for r in pipeline)
    created = of_type(events, "deal.created")
    assert len(created) == len(pipeline) == 8800
    assert len(of_type(events, "deal.won")) == stages["Won"]
    assert len(of_type(events, "deal.lost")) == stages["Lost"]
    closed = {r["opportunity_id"] for r in pipeline if r["deal_stage"] in ("Won", "Lost")}
    outcomes = [e["data"]["source_id"] for e in of_type(events, "deal.won", "deal.lost")]
    assert sorted(outcomes) == sorted(closed)
    summary = MavenSummary.of(events)
    assert (summary.deals, summary.won, summary.lost) == (8800, stages["Won"], stages["Lost"])
    assert summary.total == len(events)


@pytest.mark.unit
def test_every_reference_names_a_record_emitted_before_it(events: list[Event]) -> None:
    kinds = {"owner": "rep", "manager": "rep", "account": "account", "parent": "account"}
    emitted: set[tuple[str, str]] = set()
    for event in events:
        data = event["data"]
        for field, kind in kinds.items():
            if ref := data.get(f"{field}_source_id"):
                assert (kind, ref) in emitted, (event["source_event_id"], field)
        if event["type"] in ("deal.won", "deal.lost"):
            assert ("deal", data["source_id"]) in emitted
        emitted.add((event["type"].split(".")[0], data["source_id"]))


@pytest.mark.unit
def test_source_event_ids_are_unique(events: list[Event]) -> None:
    ids = [e["source_event_id"] for e in events]
    assert len(set(ids)) == len(ids)


@pytest.mark.unit
def test_the_same_inputs_give_byte_identical_events(events: list[Event]) -> None:
    again = load_maven_events(today=TODAY)
    assert json.dumps(again) == json.dumps(events)


@pytest.mark.unit
def test_events_are_what_ingest_accepts(events: list[Event]) -> None:
    assert all(isinstance(v, ValidEvent) for v in validate_events(events))
    assert {e["source"] for e in events} == {"csv"}
    assert {e["tenant"] for e in events} == {"maven-demo"}
    for event in events:
        assert datetime.fromisoformat(event["occurred_at"]).utcoffset() == timedelta(0)
        assert event["occurred_at"].endswith("+00:00")


@pytest.mark.unit
def test_the_list_is_ordered_reps_accounts_deals_leads(events: list[Event]) -> None:
    entities = [e["type"].split(".")[0] for e in events]
    blocks = [k for i, k in enumerate(entities) if i == 0 or entities[i - 1] != k]
    assert blocks == ["rep", "account", "deal", "lead"]
    for block in ("deal", "lead"):
        stamps = [e["occurred_at"] for e in events if e["type"].startswith(block)]
        times = [datetime.fromisoformat(stamp) for stamp in stamps]
        assert times == sorted(times)
    deals = of_type(events, "deal.created", "deal.won", "deal.lost")
    position = {e["source_event_id"]: i for i, e in enumerate(deals)}
    for e in of_type(deals, "deal.won", "deal.lost"):
        assert position[f"deal:{e['data']['source_id']}:created"] < position[e["source_event_id"]]


def deal_days(events: list[Event]) -> list[date]:
    deals = [e["data"] for e in of_type(events, "deal.created", "deal.won", "deal.lost")]
    return [day_of(d[k]) for d in deals for k in ("created_at", "closed_at") if d.get(k)]


@pytest.mark.unit
def test_dates_shift_so_the_newest_falls_on_today(events: list[Event], newest_in_csv: date) -> None:
    assert max(deal_days(events)) == TODAY
    kept = load_maven_events(today=TODAY, shift_dates=False)
    assert max(deal_days(kept)) == newest_in_csv
    shifts = {
        day_of(a["occurred_at"]) - day_of(b["occurred_at"])
        for a, b in zip(events, kept, strict=True)
        if not a["type"].startswith("lead")
    }
    assert shifts == {TODAY - newest_in_csv}  # one constant offset, whole days


@pytest.mark.unit
def test_deals_without_engage_date_appear_at_the_snapshot(
    events: list[Event], pipeline: list[dict[str, str]]
) -> None:
    never_engaged = {r["opportunity_id"] for r in pipeline if not r["engage_date"]}
    created = {e["data"]["source_id"]: e for e in of_type(events, "deal.created")}
    assert never_engaged
    for deal_id in never_engaged:
        assert created[deal_id]["data"]["created_at"] is None
        assert day_of(created[deal_id]["occurred_at"]) == TODAY


@pytest.mark.unit
def test_products_match_the_price_list(events: list[Event]) -> None:
    prices = {r["product"] for r in table("products.csv")}
    products = {e["data"]["product"] for e in of_type(events, "deal.created")}
    assert "GTXPro" not in products
    assert "GTX Pro" in products
    assert products <= prices


@pytest.mark.unit
def test_deals_are_created_open_at_list_price_and_closed_by_their_outcome_with_value(
    events: list[Event], pipeline: list[dict[str, str]]
) -> None:
    prices = {r["product"]: Decimal(r["sales_price"]) for r in table("products.csv")}
    rows = {r["opportunity_id"]: r for r in pipeline}
    for deal in (e["data"] for e in of_type(events, "deal.created")):
        row = rows[deal["source_id"]]
        assert re.fullmatch(r"\d+\.\d\d", deal["amount"])
        assert deal["currency"] == "USD"
        # Closed or not, a deal is created open at its list price: its creation does not
        # tell how it ended.
        assert Decimal(deal["amount"]) == prices[deal["product"]]
        assert deal["amount_is_list_price"] is True
        assert deal["closed_at"] is None
        if row["deal_stage"] in ("Won", "Lost"):
            assert deal["stage"] == "Engaging"
        else:
            assert deal["stage"] == row["deal_stage"]
    for outcome in (e["data"] for e in of_type(events, "deal.won", "deal.lost")):
        row = rows[outcome["source_id"]]
        assert outcome["stage"] == row["deal_stage"]
        assert Decimal(outcome["amount"]) == Decimal(row["close_value"])
        assert outcome["amount_is_list_price"] is False
        assert outcome["closed_at"] is not None


@pytest.mark.unit
def test_generated_leads_are_marked_and_plausible(events: list[Event]) -> None:
    leads = [e["data"] for e in of_type(events, "lead.created")]
    domains = {e["data"]["name"]: e["data"]["domain"] for e in of_type(events, "account.created")}
    assert 85 * 2 + 30 <= len(leads) <= 85 * 5 + 30
    assert all(lead["generated"] is True and lead["status"] == "new" for lead in leads)
    assert len({lead["email"] for lead in leads}) == len(leads)
    free_mail = [lead for lead in leads if "website" not in lead]
    assert free_mail
    assert all(
        lead["email"].endswith(("gmail.com", "yahoo.com", "outlook.com", "hotmail.com"))
        for lead in free_mail
    )
    for lead in leads:
        if lead["company"] in domains:
            assert lead["email"].endswith("@" + domains[lead["company"]])
    snapshot = datetime.combine(TODAY, datetime.min.time(), UTC)
    created = [datetime.fromisoformat(lead["created_at"]) for lead in leads]
    assert all(snapshot - timedelta(days=30) <= c < snapshot for c in created)


@pytest.mark.unit
def test_another_seed_changes_only_the_generated_leads(events: list[Event]) -> None:
    other = load_maven_events(today=TODAY, seed=7)
    kept = ("rep.created", "account.created", "deal.created", "deal.won", "deal.lost")
    assert of_type(other, *kept) == of_type(events, *kept)
    assert of_type(other, "lead.created") != of_type(events, "lead.created")


# --- the loader, against a fake stack at the HTTP port --------------------------------------


class FakeIngest:
    """``POST /v1/events`` as ingest answers it: 202, deduplicated by source_event_id.
    ``failures`` are answered, in order, before any success."""

    def __init__(self, failures: list[int | Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.batches: list[list[Event]] = []
        self.tokens: set[str] = set()
        self.calls = 0
        self.seen: set[str] = set()

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.tokens.add(request.headers.get("authorization", ""))
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(failure, json={"error": {"message": "index 3: bad amount"}})
        batch: list[Event] = json.loads(request.content)
        self.batches.append(batch)
        fresh = [e for e in batch if e["source_event_id"] not in self.seen]
        self.seen.update(e["source_event_id"] for e in batch)
        body = {"accepted": len(fresh), "duplicates": len(batch) - len(fresh), "results": []}
        return httpx.Response(202, json=body)

    @property
    def received(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.MockTransport(handler), headers={"Authorization": "Bearer s3cret"}
    )


def sample(n: int) -> list[Event]:
    return [{"type": "rep.created", "source_event_id": f"ev-{i}", "data": {}} for i in range(n)]


async def send(fake: FakeIngest, events: list[Event], out: io.StringIO | None = None) -> Any:
    out = out or io.StringIO()
    async with client_for(fake.answer) as client:
        return await send_events(
            client,
            "http://ingest.test",
            events,
            batch_size=100,
            progress=Progress(len(events), out),
            retry=NO_WAIT,
        )


@pytest.mark.unit
async def test_events_go_in_order_in_batches_with_the_bearer_token() -> None:
    fake, events, out = FakeIngest(), sample(1234), io.StringIO()
    report = await send(fake, events, out)
    assert [len(b) for b in fake.batches] == [100] * 12 + [34]
    assert fake.received == events
    assert fake.tokens == {"Bearer s3cret"}
    assert (report.accepted, report.duplicates, report.batches) == (1234, 0, 13)
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # a line per ~10 % in logs
    assert "\r" not in out.getvalue()
    assert lines[-1] == f"loading Maven CRM  [{'#' * 30}]  1,234/1,234 events"


@pytest.mark.unit
async def test_a_second_load_reports_duplicates() -> None:
    fake, events = FakeIngest(), sample(250)
    await send(fake, events)
    again = await send(fake, events)
    assert (again.accepted, again.duplicates) == (0, 250)


@pytest.mark.unit
async def test_the_bar_is_redrawn_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    await send(FakeIngest(), sample(300), out)
    assert out.getvalue().count("\r") == 3
    assert out.getvalue().endswith("300/300 events\n")


@pytest.mark.unit
@pytest.mark.parametrize(
    "failure", [503, 429, httpx.ConnectError("refused")], ids=["503", "429", "connection"]
)
async def test_a_failed_batch_is_retried_until_it_succeeds(failure: int | Exception) -> None:
    fake, events = FakeIngest([failure, failure]), sample(150)
    report = await send(fake, events)
    assert fake.calls == 2 + 2
    assert fake.received == events
    assert report.accepted == 150


@pytest.mark.unit
async def test_retries_are_bounded() -> None:
    fake = FakeIngest([503] * 5)
    with pytest.raises(DemoError, match="kept failing"):
        await send(fake, sample(10))
    assert fake.calls == 5


@pytest.mark.unit
async def test_a_refused_batch_raises_with_ingest_s_answer() -> None:
    fake = FakeIngest([422])
    with pytest.raises(DemoError, match="422.*index 3: bad amount"):
        await send(fake, sample(10))
    assert fake.calls == 1


class FakeStack:
    """Ingest, metrics, forecast and routing on their own hosts: metrics and forecast report
    what ingest has received, as if the consumers were instant."""

    def __init__(self, *, metrics_up: bool = True, reps_on_duty: bool = True) -> None:
        self.ingest = FakeIngest()
        self.metrics_up = metrics_up
        self.reps_on_duty = reps_on_duty  # else every lead waits in routing's queue
        self.forecast_runs = 0
        self.routing_reads = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        if host == "ingest.test" and path == "/v1/events":
            return self.ingest.answer(request)
        if host == "routing.test" and path in ("/v1/reps", "/v1/routing/queue"):
            self.routing_reads += 1
            return httpx.Response(200, json=self.routing(path))
        if host == "metrics.test" and path == "/v1/kpis" and self.metrics_up:
            return httpx.Response(200, json={"kpis": self.kpis()})
        if host == "forecast.test" and path == "/v1/pipeline":
            return httpx.Response(200, json={"won_deals": self.count("deal.won"), "lost_deals": 0})
        if host == "forecast.test" and path == "/v1/forecasts/run":
            self.forecast_runs += 1
            return httpx.Response(201, json={"forecasts": [self.forecast()]})
        raise httpx.ConnectError("nothing listens there", request=request)

    def count(self, type_name: str) -> int:
        return sum(1 for e in self.ingest.received if e["type"] == type_name)

    def routing(self, path: str) -> dict[str, Any]:
        leads = self.count("lead.created")
        if path == "/v1/reps":
            return {"reps": [{"assigned_leads": leads if self.reps_on_duty else 0}, {}]}
        reason = "no eligible rep in territory default (2 outside_hours): fallback queue"
        queued = [{"lead_id": "x", "reason": reason}] if leads and not self.reps_on_duty else []
        return {"count": 0 if self.reps_on_duty else leads, "leads": queued}

    def kpis(self) -> list[dict[str, Any]]:
        won, lost = self.count("deal.won"), self.count("deal.lost")
        values = {"win_rate": won / max(won + lost, 1), "deals_won": won, "deals_lost": lost}
        values["leads_assigned"] = self.count("lead.created") if self.reps_on_duty else 0
        return [{"kpi": k, "value": v} for k, v in values.items()]

    @staticmethod
    def forecast() -> dict[str, Any]:
        scope = {"kind": "company", "id": None}
        return {"scope": scope, "period": "2026-Q4", "point": "1000.00", "currency": "USD"}


async def demo(stack: FakeStack, out: io.StringIO) -> Any:
    return await run_demo(
        ingest_url="http://ingest.test",
        forecast_url="http://forecast.test",
        routing_url="http://routing.test",
        metrics_url="http://metrics.test",
        api_token="s3cret",
        out=out,
        transport=httpx.MockTransport(stack.answer),
        retry=NO_WAIT,
        wait_within=1,
    )


@pytest.mark.unit
async def test_the_demo_loads_forecasts_and_summarizes() -> None:
    stack, out = FakeStack(), io.StringIO()
    report = await demo(stack, out)
    summary = MavenSummary.of(stack.ingest.received)
    assert report.events == report.accepted == summary.total == len(stack.ingest.received)
    assert all(len(b) <= 500 for b in stack.ingest.batches)
    assert stack.forecast_runs == 1
    assert report.forecasts
    text = out.getvalue()
    assert f"GENERATED: {summary.leads} leads" in text
    assert f"deals_won={summary.won}" in text
    assert "win_rate=0.632" in text
    assert "forecast, company, 2026-Q4: 1000.00 USD" in text
    assert f"routing: {summary.leads} leads routed: {summary.leads} to reps" in text
    assert "0 waiting in the fallback queue" in text
    again = await demo(stack, io.StringIO())
    assert (again.accepted, again.duplicates) == (0, report.events)


@pytest.mark.unit
async def test_the_summary_never_fails_the_demo() -> None:
    out = io.StringIO()
    report = await demo(FakeStack(metrics_up=False), out)
    assert report.accepted == report.events
    assert report.kpis == []
    assert "kpis: metrics did not answer" in out.getvalue()


@pytest.mark.unit
async def test_leads_routing_queues_are_reported_and_not_waited_for() -> None:
    """Outside every rep's working hours (a weekend, a night) routing queues the generated
    leads: the demo says so and why, and does not wait for metrics to see them assigned."""
    stack, out = FakeStack(reps_on_duty=False), io.StringIO()
    report = await demo(stack, out)
    leads = MavenSummary.of(stack.ingest.received).leads
    assert report.routed is not None
    assert (report.routed.to_reps, report.routed.queued) == (0, leads)
    text = out.getvalue()
    assert f"routing: {leads} leads routed: 0 to reps" in text
    assert f"{leads} waiting in the fallback queue" in text
    assert "the oldest waits because: no eligible rep in territory default" in text
    assert "queued leads go to a rep when their working day begins" in text
    # Nothing stalled: each service was asked about once per wait, not polled until a timeout.
    assert stack.routing_reads <= 4
