"""Scale out: two ``salesops serve`` processes of every consumer service (routing, metrics,
forecast) in one consumer group give the same assignments, KPIs and forecast as one process
of each, fed the same events.

Both setups run side by side, each on its own databases and topics (an ``Isolation``), each
behind one ingest that gets the same requests. Entity ids are derived from the CRM's ids, so
a lead or a rep has the same id in both. What may differ, and is not compared: which rep of a
round-robin rotation a given lead lands on (the order leads from different partitions are
decided in is not fixed, with one process or two) and durations measured by the wall clock.

Routing's share of the work and its strict rotation across two processes are proven in
tests/routing/integration/test_two_instances.py; here the whole pipeline runs as processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from tests.e2e.conftest import ready
from tests.support import AUTH, Isolation, api_event, eventually, read_topic

pytestmark = pytest.mark.e2e

CONSUMERS = ("routing", "metrics", "forecast")
# KPIs of wall-clock durations: the time from a lead's arrival to its assignment differs
# from one run to the next whatever the number of processes.
CLOCK_KPIS = ("lead_response", "speed_to_lead")

INSIDE = [f"IN{i}" for i in range(3)]  # round robin, the fallback territory
DACH_REP = "DACH0"  # the one member of the DACH territory
LEADS = 60  # 15 to DACH, 45 shared by the inside reps: 15 each under strict rotation
# (outcome, amount, owner) of each deal; "open" deals stay in the pipeline.
DEALS = [
    ("won", 1200, "IN0"),
    ("won", 800, "IN1"),
    ("lost", 500, "IN2"),
    ("won", 2000, DACH_REP),
    ("lost", 900, "IN0"),
    ("open", 3000, "IN1"),
    ("open", 1500, DACH_REP),
    ("open", 700, "IN2"),
]


@dataclass
class Setup:
    """One ingest and ``copies`` processes of each consumer service on one isolation."""

    iso: Isolation
    copies: int
    logs: Path
    urls: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> None:
        for service in ("ingest", *CONSUMERS):
            for copy in range(1 if service == "ingest" else self.copies):
                port = free_port()
                env = {
                    **os.environ,
                    **self.iso.env(),
                    f"SALESOPS_{service.upper()}_PORT": str(port),
                }
                log = self.logs / f"{service}-{copy}.log"
                with log.open("ab") as out:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "salesops_cli.main", "serve", service],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                self.processes.append((log.name, process))
                self.urls[service].append(f"http://127.0.0.1:{port}")

    def wait_ready(self, deadline: float) -> None:
        pending = [(n, p, u) for (n, p), u in zip(self.processes, self.all_urls(), strict=True)]
        while pending:
            for name, process, url in list(pending):
                assert process.poll() is None, f"{name} exited:\n{self.log(name)}"
                if ready(url):
                    pending.remove((name, process, url))
            assert time.monotonic() < deadline, f"not ready: {[n for n, _, _ in pending]}"
            time.sleep(0.2)

    def all_urls(self) -> list[str]:
        return [url for service in ("ingest", *CONSUMERS) for url in self.urls[service]]

    def log(self, name: str) -> str:
        return (self.logs / name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def ingest(self) -> str:
        return self.urls["ingest"][0]


@pytest.fixture
def setups(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[tuple[Setup, Setup]]:
    single, double = (
        Setup(Isolation(postgres.url, broker.bootstrap), copies, tmp_path / f"x{copies}")
        for copies in (1, 2)
    )
    try:
        for setup in (single, double):
            setup.logs.mkdir()
            setup.start()
        # Eleven processes importing (forecast: scikit-learn) and migrating at once: seconds
        # on a quiet machine, minutes on a busy one. A bound for a process that never comes up.
        deadline = time.monotonic() + 300
        for setup in (single, double):
            setup.wait_ready(deadline)
        yield single, double
    finally:
        single.stop()
        double.stop()


def reps() -> list[dict[str, Any]]:
    team = {**{r: "inside" for r in INSIDE}, DACH_REP: "dach"}
    return [
        api_event(
            "rep.created",
            rep,
            {"name": rep, "email": f"{rep.lower()}@x.example", "active": True, "team": t},
        )
        for rep, t in team.items()
    ]


def ruleset(rep_ids: dict[str, str]) -> dict[str, Any]:
    return {
        "fallback_territory": "inside",
        "territories": [
            {
                "id": "dach",
                "strategy": "round_robin",
                "members": [{"rep_id": rep_ids[DACH_REP]}],
                "rules": [{"country": ["DE", "AT", "CH"]}],
            },
            {
                "id": "inside",
                "strategy": "round_robin",
                "members": [{"rep_id": rep_ids[r]} for r in INSIDE],
                "rules": [{"country": ["US"]}],
            },
        ],
    }


def leads() -> list[dict[str, Any]]:
    countries = ("DE", "US", "US", "US")  # 1 in 4 to DACH
    return [
        api_event(
            "lead.created",
            f"L{i}",
            {
                "email": f"buyer{i}@acme{i}.example",
                "company": f"Acme {i}",
                "country": countries[i % 4],
            },
        )
        for i in range(LEADS)
    ]


def deals() -> list[dict[str, Any]]:
    today = datetime.now(UTC)
    this_month = datetime(today.year, today.month, 1, tzinfo=UTC).isoformat()
    events = []
    for i, (outcome, amount, owner) in enumerate(DEALS):
        money = {"amount": str(amount), "currency": "USD", "owner_source_id": owner}
        events.append(api_event("deal.created", f"D{i}", {**money, "stage": "Engaging"}))
        if outcome != "open":
            closed = {**money, "stage": outcome.title(), "closed_at": this_month}
            events.append(api_event(f"deal.{outcome}", f"D{i}", closed))
    return events


async def post(http: httpx.AsyncClient, url: str, events: list[dict[str, Any]]) -> list[str]:
    resp = await http.post(url + "/v1/events", json=events)
    assert resp.status_code == 202, resp.text
    return [r["entity_id"] for r in resp.json()["results"]]


async def feed(http: httpx.AsyncClient, setup: Setup) -> list[str]:
    """The same requests, in the same order, to either setup; the ids of the leads."""
    rep_ids = dict(
        zip(
            [e["data"]["source_id"] for e in reps()],
            await post(http, setup.ingest, reps()),
            strict=True,
        )
    )

    async def every_copy_knows_the_reps() -> bool:
        for url in setup.urls["routing"]:
            r = await http.get(url + "/v1/reps")
            if r.status_code != 200 or len(r.json()["reps"]) != len(rep_ids):
                return False
        return True

    await eventually(every_copy_knows_the_reps, within=60)
    # The ruleset goes to one copy; the leads are decided by both.
    resp = await http.put(setup.urls["routing"][-1] + "/v1/routing/ruleset", json=ruleset(rep_ids))
    assert resp.status_code == 200, resp.text
    lead_ids = await post(http, setup.ingest, leads())
    await post(http, setup.ingest, deals())
    return lead_ids


async def assignments(setup: Setup, lead_ids: list[str]) -> dict[str, str]:
    """lead id -> rep id, from the routing topic; each lead assigned exactly once."""
    wanted = set(lead_ids)
    events = await read_topic(
        setup.iso.bootstrap,
        setup.iso.topic("salesops.routing.v1"),
        until=lambda seen: (
            wanted <= {e.data.get("lead_id") for e in seen if e.type == "lead.assigned"}
        ),
        within=60,
        settle=True,
    )
    reps_of: defaultdict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.type == "lead.assigned":
            reps_of[event.data["lead_id"]].append(event.data["rep_id"])
    assert set(reps_of) == wanted
    doubled = {lead: reps for lead, reps in reps_of.items() if len(reps) != 1}
    assert not doubled, f"assigned more than once: {doubled}"
    return {lead: reps[0] for lead, reps in reps_of.items()}


async def kpis(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await http.get(url + "/v1/kpis")
    assert r.status_code == 200, r.text
    body = r.json()
    values = {
        k["kpi"]: (k["value"], k["numerator"], k["denominator"], k["n"])
        for k in body["kpis"]
        if not k["kpi"].startswith(CLOCK_KPIS)
    }
    return {"kpis": values, "events": body["events_by_type"]}


async def settled_kpis(http: httpx.AsyncClient, setup: Setup) -> dict[str, Any]:
    """The KPIs once every lead is assigned and every closed deal counted, and every copy
    answers the same."""
    expected_deals = sum(1 for d in DEALS if d[0] != "open")

    async def settled() -> dict[str, Any] | None:
        seen = [await kpis(http, url) for url in setup.urls["metrics"]]
        first = seen[0]
        counts = {k: v[0] for k, v in first["kpis"].items()}
        if (
            counts["leads_assigned"] != LEADS
            or (counts["deals_won"] or 0) + (counts["deals_lost"] or 0) != expected_deals
        ):
            return None
        return first if all(s == first for s in seen) else None

    result: dict[str, Any] = await eventually(settled, within=60, interval=0.5)
    return result


async def forecasts(http: httpx.AsyncClient, setup: Setup) -> list[dict[str, Any]]:
    """A forecast run on the last copy once the pipeline snapshot holds every deal: every
    scope and period, as the first copy shows them, without what names the run."""
    outcomes = Counter(outcome for outcome, _, _ in DEALS)
    expected = {f"{o}_deals": outcomes[o] for o in ("open", "won", "lost")}

    async def every_deal_applied() -> bool:
        r = await http.get(setup.urls["forecast"][0] + "/v1/pipeline")
        return r.status_code == 200 and r.json() == expected

    await eventually(every_deal_applied, within=60, interval=0.5)
    r = await http.post(setup.urls["forecast"][-1] + "/v1/forecasts/run")
    assert r.status_code == 201, r.text
    run = r.json()["forecasts"]
    r = await http.get(setup.urls["forecast"][0] + "/v1/forecasts")
    assert r.status_code == 200, r.text
    shown = r.json()["forecasts"]
    assert {f["forecast_id"] for f in shown} == {f["forecast_id"] for f in run}
    drop = {"forecast_id", "run_id", "as_of"}
    return sorted(
        ({k: v for k, v in f.items() if k not in drop} for f in shown),
        key=lambda f: (f["scope"]["kind"], str(f["scope"].get("id")), f["period"]),
    )


async def test_two_copies_of_each_consumer_agree_with_one(setups: tuple[Setup, Setup]) -> None:
    single, double = setups
    async with httpx.AsyncClient(headers=AUTH, timeout=20) as http:
        lead_ids = [await feed(http, setup) for setup in (single, double)]
        assert lead_ids[0] == lead_ids[1]  # ids derive from the CRM's: the same in both

        # Routing: every lead once; DACH leads to their one rep; the rotation even.
        one, two = [await assignments(s, ids) for s, ids in zip(setups, lead_ids, strict=True)]
        dach = {lead for i, lead in enumerate(lead_ids[0]) if i % 4 == 0}
        assert {one[lead] for lead in dach} == {two[lead] for lead in dach}
        assert all(one[lead] == two[lead] for lead in dach)
        assert Counter(one.values()) == Counter(two.values())
        assert sorted(Counter(one.values()).values()) == [15, 15, 15, 15]

        # Metrics: the same KPIs, and both copies of the two-copy setup agree.
        kpis_one, kpis_two = [await settled_kpis(http, s) for s in setups]
        assert kpis_one == kpis_two
        assert kpis_one["kpis"]["leads_assigned"][0] == LEADS
        assert kpis_one["kpis"]["win_rate"][0] == pytest.approx(3 / 5)

        # Forecast: the same forecasts, whichever copy ran them and whichever shows them.
        forecasts_one, forecasts_two = [await forecasts(http, s) for s in setups]
        assert forecasts_one == forecasts_two
        company = [f for f in forecasts_one if f["scope"]["kind"] == "company"]
        assert company
        assert {f["deals"] for f in company} == {3}, company  # the open deals
