"""A real Prometheus scrapes the running services after a demo-like load, and every query of
every panel of both Grafana dashboards returns data.

The services run as ``salesops up`` runs them (tests/e2e), on the session's PostgreSQL and
broker; Prometheus is Debian's ``prometheus`` binary with the scrape jobs and alert rules of
``deploy/prometheus`` (its DNS discovery replaced by the services' loopback ports). The load
is a slice of the Maven sample through ingest's API, as ``salesops demo`` sends it, plus what
the demo cannot give yet (see :func:`load`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from salesops_cli.demo import run_forecast
from salesops_cli.infra import free_port, remove_tree
from salesops_cli.maven import load_maven_events
from salesops_common.envelope import Envelope
from salesops_common.events import ForecastPublished, ForecastScope
from tests.deploy import grafana
from tests.e2e.conftest import SERVICES, RunningStack, stack_env, start_stack, stop_stack
from tests.support import AUTH, Isolation, eventually, publish, read_topic

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="the prometheus server is not installed (Debian package `prometheus`: "
        "apt-get install prometheus; .ci/run installs it), so the dashboards cannot be "
        "checked against a real Prometheus",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
SCRAPE_INTERVAL = "2s"
DEAL_DAYS = 65  # deals with an event in the last 65 days: the window and the month before
DEAL_SHARE = 3  # one deal in three of those


# ------------------------------------------------------------------------------ Prometheus


def prometheus_config(urls: dict[str, str], own: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with each DNS-discovered job pointed at the service's
    loopback address, and the alert rules loaded from deploy/prometheus."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(
        scrape_interval=SCRAPE_INTERVAL, scrape_timeout=SCRAPE_INTERVAL, evaluation_interval="1s"
    )
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if "dns_sd_configs" in job:
            target = urls[name].removeprefix("http://")
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [target]}]
        elif name == "prometheus":
            job["static_configs"] = [{"targets": [own]}]
    return config


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    async def query(self, http: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
        resp = await http.get(self.url + "/api/v1/query", params={"query": expr})
        body = resp.json()
        assert resp.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def get(self, http: httpx.AsyncClient, path: str, **params: str) -> Any:
        resp = await http.get(self.url + path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]


def start_prometheus(urls: dict[str, str], root: Path) -> Prometheus:
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(urls, address)))
    log = root / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(shutil.which("prometheus")),
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://{address}", process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(prom.url + "/-/ready", timeout=1).status_code == 200:
                return prom
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_prometheus(prom)
            pytest.fail(f"prometheus did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def stop_prometheus(prom: Prometheus) -> None:
    if prom.process.poll() is None:
        prom.process.terminate()
        try:
            prom.process.wait(20)
        except subprocess.TimeoutExpired:
            prom.process.kill()
            prom.process.wait()


# ------------------------------------------------------------------------------ the stack


@dataclass
class Live:
    stack: RunningStack
    prometheus: Prometheus
    iso: Isolation


@pytest.fixture
def live(iso: Isolation) -> Iterator[Live]:
    """The four services (``salesops up``) and Prometheus, on free loopback ports, with
    everything they write in one temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="salesops-dashboards-"))
    home = root / "stack"
    home.mkdir()
    env, urls = stack_env(iso, home)
    try:
        stack = start_stack(env, urls, home)
        try:
            prom = start_prometheus(urls, root)
            try:
                yield Live(stack, prom, iso)
            finally:
                stop_prometheus(prom)
        finally:
            stop_stack(stack)
    finally:
        remove_tree(root)


# ------------------------------------------------------------------------------ the load

Event = dict[str, Any]
BATCH = 500
TEAMS = ("Central", "East", "West")


def demo_slice(now: datetime) -> tuple[list[Event], list[Event], list[Event], list[Event]]:
    """Reps, accounts, deals and leads of ``salesops demo``: every rep, account and generated
    lead, and one in three of the deals that closed or were engaged in the last 65 days.

    The reps lose their working hours (9 to 5 on weekdays in the sample): routing would send
    a lead that arrives on a weekend or at night to the fallback queue, and the test must not
    depend on the hour it runs at. Without them a rep is always available."""
    events = load_maven_events(today=now.date())
    cut = (now - timedelta(days=DEAL_DAYS)).isoformat()
    by_type: dict[str, list[Event]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    reps = by_type["rep.created"]
    for rep in reps:
        rep["data"].pop("working_hours", None)
    deal_events = [e for e in events if e["type"] in ("deal.created", "deal.won", "deal.lost")]
    recent = sorted({e["data"]["source_id"] for e in deal_events if e["occurred_at"] >= cut})
    chosen = set(recent[::DEAL_SHARE])
    deals = [e for e in deal_events if e["data"]["source_id"] in chosen]
    return reps, by_type["account.created"], deals, by_type["lead.created"]


def ruleset(reps: list[Event]) -> dict[str, Any]:
    """Two territories, as a sales-ops team would set them up for the sample: North America
    (the East and Central offices) and the rest of the world (West), each with a first-touch
    SLA. Deals get their territory through their account's placement."""

    def members(*teams: str) -> list[dict[str, str]]:
        return [
            {"email": r["data"]["email"]}
            for r in reps
            if r["data"]["role"] == "rep" and r["data"]["team"] in teams
        ]

    sla = {"first_touch_minutes": 240, "max_reassignments": 1}
    return {
        "fallback_territory": "rest-of-world",
        "territories": [
            {
                "id": "north-america",
                "name": "North America",
                "team": "East",
                "sla": sla,
                "members": members("East", "Central"),
                "rules": [{"id": "na-countries", "country": ["US", "CA", "MX"]}],
            },
            {
                "id": "rest-of-world",
                "name": "Rest of the world",
                "team": "West",
                "sla": sla,
                "members": members("West"),
                "rules": [],
            },
        ],
    }


def first_touches(
    leads: list[Event], owners: dict[str, str], rep_sources: dict[str, str], now: datetime
) -> str:
    """A CSV of activities, as `salesops import` sends one: an outbound e-mail or call by the
    lead's owner, minutes to hours after the lead came in, for all but one lead in twenty
    (never touched: unresponded)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["source_id", "type", "direction", "tool", "rep_source_id", "lead_source_id", "occurred_at"]
    )
    for n, lead in enumerate(leads):
        rep = owners.get(lead["data"]["source_id"])
        if rep is None or n % 20 == 19:
            continue
        created = datetime.fromisoformat(lead["data"]["created_at"])
        at = min(created + timedelta(minutes=5 + (n * 37) % 600), now - timedelta(minutes=1))
        tool = "email" if n % 3 else "crm"
        writer.writerow(
            [
                f"act-{lead['data']['source_id']}",
                "email" if tool == "email" else "call",
                "outbound",
                tool,
                rep_sources[rep],
                lead["data"]["source_id"],
                at.isoformat(),
            ]
        )
    return out.getvalue()


def stage_moves(deals: list[Event], now: datetime) -> list[Event]:
    """One prospecting deal in three moves on to Engaging: the sample has no stage history
    (each deal is created at its current stage), and stage conversion counts moves."""
    prospecting = [
        e for e in deals if e["type"] == "deal.created" and e["data"]["stage"] == "Prospecting"
    ]
    return [
        {
            "type": "deal.stage_changed",
            "source": e["source"],
            "tenant": e["tenant"],
            "source_event_id": f"deal:{e['data']['source_id']}:engaging",
            "occurred_at": now.isoformat(),
            "data": {"source_id": e["data"]["source_id"], "stage": "Engaging"},
        }
        for e in prospecting[::3]
    ]


def duplicate_of(lead: Event) -> Event:
    """The same person again from another form: ingest merges it (lead.merged)."""
    data = {**lead["data"], "source_id": "gen-lead-again", "lead_source": "Event"}
    return {**lead, "source_event_id": "lead:gen-lead-again:created", "data": data}


def month_before(day: date) -> tuple[str, datetime]:
    """The calendar month before ``day`` (a fiscal month: months keep their names) and the
    moment it began."""
    first = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
    return f"{first:%Y-%m}", datetime.combine(first, datetime.min.time(), UTC)


def quarter_of(day: date) -> str:
    """The fiscal quarter holding ``day`` with the default fiscal year (January first)."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def won_last_month(reps: list[Event], deals: list[Event], now: datetime) -> dict[str, Decimal]:
    """What was won last month, company-wide ("") and by the owner's team."""
    _, began = month_before(now.date())
    ended = datetime.combine(now.date().replace(day=1), datetime.min.time(), UTC)
    team_of = {r["data"]["source_id"]: r["data"]["team"] for r in reps}
    won: dict[str, Decimal] = {"": Decimal(0), **{t: Decimal(0) for t in TEAMS}}
    for e in deals:
        if e["type"] == "deal.won" and began <= datetime.fromisoformat(e["occurred_at"]) < ended:
            amount = Decimal(e["data"]["amount"])
            won[""] += amount
            won[team_of[e["data"]["owner_source_id"]]] += amount
    return won


def earlier_forecasts(won: dict[str, Decimal], now: datetime) -> list[Envelope]:
    """forecast.published as forecast would have published it a day before last month
    began, for the company and each team, a little off what was then won: forecast accuracy
    needs a closed period and a forecast made before it began, which a stack started minutes
    ago cannot have (the service forecasts from now on)."""
    period, began = month_before(now.date())
    as_of = began - timedelta(days=1)
    out = []
    for n, (team, actual) in enumerate(sorted(won.items())):
        point = (actual or Decimal(1000)) * Decimal(("1.10", "0.90", "1.05", "1.20")[n % 4])
        scope = ForecastScope(kind="team", id=team) if team else ForecastScope(kind="company")
        data = ForecastPublished(
            forecast_id=uuid.uuid4(),
            as_of=as_of,
            period=period,
            scope=scope,
            currency="USD",
            point=point,
            lo80=point * Decimal("0.8"),
            hi80=point * Decimal("1.2"),
            lo95=point * Decimal("0.7"),
            hi95=point * Decimal("1.3"),
            categories={"commit": point},
            methods={"weighted_pipeline": 1.0},
        )
        out.append(Envelope.of("forecast.published", data, source="/forecast", time=as_of))
    return out


async def post_events(http: httpx.AsyncClient, ingest: str, events: list[Event]) -> list[Any]:
    results = []
    for start in range(0, len(events), BATCH):
        resp = await http.post(ingest + "/v1/events", json=events[start : start + BATCH])
        assert resp.status_code == 202, resp.text
        results.extend(resp.json()["results"])
    return results


async def poison(bootstrap: str, topic: str) -> None:
    """A record no consumer can decode (no CloudEvents headers): each consumer of the topic
    dead-letters it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"not an event", key=b"poison")
    finally:
        await producer.stop()


async def dead_letters_scraped(prom: Prometheus, http: httpx.AsyncClient) -> bool:
    expr = '{__name__=~"salesops_(routing|metrics)_dlq_events_total", topic="salesops.crm.v1"}'
    series = await prom.query(http, expr)
    return {s["metric"]["job"] for s in series} == {"routing", "metrics"}


async def load(live: Live, http: httpx.AsyncClient) -> dict[str, int]:
    """The demo's load and what a sales-ops team adds in its first weeks.

    - as ``salesops demo``: reps, accounts, deals with their outcomes, generated leads;
    - a territory model (routing) and quotas for this quarter (metrics), over REST;
    - a lead sent twice (ingest merges it) and some deals moving on a stage;
    - first-touch activities on the leads, as a CSV import (the sample has none): response
      time, SLA and adoption need them;
    - a forecast run now, and forecasts published before last month began (see
      :func:`earlier_forecasts`);
    - one undecodable record on the CRM topic, so the dead-letter panels and alert see one.
    """
    urls, iso = live.stack.urls, live.iso
    now = datetime.now(UTC)
    reps, accounts, deals, leads = demo_slice(now)
    leads.append(duplicate_of(leads[0]))

    rep_results = await post_events(http, urls["ingest"], reps)
    rep_sources = {
        r["entity_id"]: e["data"]["source_id"] for r, e in zip(rep_results, reps, strict=True)
    }

    async def routing_knows_reps() -> bool:
        resp = await http.get(urls["routing"] + "/v1/reps")
        return resp.status_code == 200 and len(resp.json()["reps"]) >= len(reps)

    await eventually(routing_knows_reps, within=60)
    resp = await http.put(urls["routing"] + "/v1/routing/ruleset", json=ruleset(reps))
    assert resp.status_code == 200, resp.text

    await post_events(http, urls["ingest"], accounts + deals)
    lead_results = await post_events(http, urls["ingest"], leads)
    assert lead_results[-1]["status"] == "merged", lead_results[-1]
    lead_ids = {
        r["entity_id"]: e["data"]["source_id"]
        for r, e in zip(lead_results, leads, strict=True)
        if r["status"] == "accepted"
    }
    await post_events(http, urls["ingest"], stage_moves(deals, now))
    assigned = await read_topic(
        iso.bootstrap,
        iso.topic("salesops.routing.v1"),
        until=lambda seen: {e.data.get("lead_id") for e in seen} >= set(lead_ids),
        within=60,
    )
    owners = {
        lead_ids[e.data["lead_id"]]: e.data["rep_id"]
        for e in assigned
        if e.type in ("lead.assigned", "lead.reassigned")
        and e.data.get("lead_id") in lead_ids
        and e.data.get("rep_id")
    }
    touches = first_touches(leads, owners, rep_sources, now)
    resp = await http.post(
        urls["ingest"] + "/v1/imports",
        params={"kind": "activity", "tenant": "maven-demo"},
        content=touches.encode(),
        headers={"Content-Type": "text/csv"},
    )
    report = resp.json()
    assert resp.status_code == 200, resp.text
    assert report["error_count"] == 0, report

    quarter = quarter_of(now.date())
    quotas = [{"period": quarter, "scope": {"kind": "company"}, "amount": "3000000"}]
    quotas += [
        {"period": quarter, "scope": {"kind": "team", "id": t}, "amount": "1000000"} for t in TEAMS
    ]
    resp = await http.put(urls["metrics"] + "/v1/quotas", json={"quotas": quotas})
    assert resp.status_code == 200, resp.text

    forecasts = await run_forecast(http, urls["forecast"], tries=60, pause=1.0)
    assert forecasts, "forecast published no company forecast"
    earlier = earlier_forecasts(won_last_month(reps, deals, now), now)
    await publish(iso.bootstrap, iso.topic("salesops.forecast.v1"), earlier)
    # Prometheus must hold each consumer's dead-letter series at 0 before the poison record:
    # a series first scraped at 1 has no increase(), and the alert would not fire.
    await eventually(lambda: dead_letters_scraped(live.prometheus, http), within=60)
    await poison(iso.bootstrap, iso.topic("salesops.crm.v1"))
    return {
        "reps": len(reps),
        "accounts": len(accounts),
        "deal events": len(deals),
        "leads": len(lead_ids),
        "activities": report["accepted"],
    }


# ------------------------------------------------------------------------------ the test


def has_value(series: dict[str, Any]) -> bool:
    """A sample that is a number (+Inf counts: a percentile among unresponded leads); NaN is
    how the KPIs say "no data"."""
    return not math.isnan(float(series["value"][1]))


async def queries_without_data(
    http: httpx.AsyncClient, prom: Prometheus, checks: list[tuple[grafana.Query, str]]
) -> list[str]:
    out = []
    for query, expr in checks:
        result = await prom.query(http, expr)
        if not any(has_value(s) for s in result):
            out.append(f"{query.where}\n    {expr}\n    -> {result}")
    return out


async def test_every_dashboard_panel_has_data_from_prometheus(live: Live) -> None:
    prom = live.prometheus
    dashboards = {p.name: grafana.load(p) for p in grafana.dashboard_paths()}
    checks = [
        (query, grafana.as_shown(dashboard, query.expr))
        for name, dashboard in dashboards.items()
        for query in grafana.queries(dashboard, name)
    ]
    assert {q.dashboard for q, _ in checks} == {"sales-ops.json", "system.json"}

    async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
        loaded = await load(live, http)
        deadline = time.monotonic() + 120
        while missing := await queries_without_data(http, prom, checks):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        targets = await prom.get(http, "/api/v1/targets")
        health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
        assert not missing, (
            f"{len(missing)} of {len(checks)} panel queries have no data after loading "
            f"{loaded}; targets {health}:\n" + "\n".join(missing)
        )
        assert health == {job: "up" for job in (*SERVICES, "prometheus")}, health

        # The dashboards' variables list what the series carry.
        for dashboard in dashboards.values():
            for var in grafana.variables(dashboard):
                selector, label = var.label_values()
                values = await prom.get(
                    http, f"/api/v1/label/{label}/values", **{"match[]": selector}
                )
                assert values, var.name
                assert all(values), (var.name, values)

        # Every rule evaluates without error on the real series, and the poison record
        # fires the dead-letter alert (it has no `for`: firing at once).
        groups = (await prom.get(http, "/api/v1/rules"))["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
        assert set(rules) == {r["alert"] for g in alerts["groups"] for r in g["rules"]}
        assert all(r["health"] == "ok" for r in rules.values()), rules

        async def dead_letter_alert() -> set[str]:
            alerts = (await prom.get(http, "/api/v1/alerts"))["alerts"]
            return {
                a["labels"]["job"]
                for a in alerts
                if a["labels"]["alertname"] == "SalesopsDeadLetterGrowth" and a["state"] == "firing"
            }

        assert await eventually(dead_letter_alert, within=30) >= {"routing", "metrics"}
