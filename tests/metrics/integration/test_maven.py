"""The Maven CRM sample, loaded through ingest's REST API as ``salesops demo`` loads it: win
rate, sales cycle and deal conversion, overall, by regional office (the team) and by agent
(the rep), equal what this test computes from the CSV files itself.

The events go in as source ``api`` rather than the demo's ``csv``: ingest reads REST events of
source csv through its shipped CSV mapping, which maps no reps, so it refuses the sample's
rep.created (a defect outside metrics, reported with this work)."""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres
from salesops_cli.maven import DATA_DIR, load_maven_events, rep_source_id
from salesops_ingest.bootstrap import create_app as create_ingest
from salesops_ingest.config import IngestSettings
from salesops_metrics.bootstrap import create_app as create_metrics
from tests.metrics.support import NOW, fixed_clock, kpi, metrics_settings, one
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration
BATCH = 1000


@dataclass
class Expected:
    """The sample's figures, from the CSV files with nothing of salesops."""

    won: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    deals: Counter[str] = field(default_factory=Counter)
    cycles: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, keys: list[str], row: dict[str, str]) -> None:
        for key in keys:
            self.deals[key] += 1
            if row["deal_stage"] == "Won":
                self.won[key] += 1
                engaged, closed = (
                    date.fromisoformat(row[c]) for c in ("engage_date", "close_date")
                )
                self.cycles[key].append((closed - engaged).days)
            elif row["deal_stage"] == "Lost":
                self.lost[key] += 1


def expected_from_csv(data_dir: Path) -> Expected:
    with open(data_dir / "sales_teams.csv", newline="", encoding="utf-8") as f:
        office = {r["sales_agent"]: r["regional_office"] for r in csv.DictReader(f)}
    out = Expected()
    with open(data_dir / "sales_pipeline.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            agent = row["sales_agent"]
            out.add(["all", f"team:{office[agent]}", f"agent:{agent}"], row)
    return out


@dataclass
class Loaded:
    metrics: httpx.AsyncClient
    rep_ids: dict[str, str]  # agent -> canonical rep id
    expected: Expected


async def post_events(ingest: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, str]:
    """Post in batches; returns the canonical id of every posted source id."""
    ids: dict[str, str] = {}
    for first in range(0, len(events), BATCH):
        batch = events[first : first + BATCH]
        resp = await ingest.post("/v1/events", json=batch, headers=AUTH)
        assert resp.status_code == 202, resp.text
        for event, result in zip(batch, resp.json()["results"], strict=True):
            ids[event["data"]["source_id"]] = result["entity_id"]
    return ids


@pytest.fixture(scope="module")
async def maven(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> AsyncIterator[Loaded]:
    iso = Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
    ingest_settings = IngestSettings(database=iso.database("ingest"), **iso.settings_kwargs())
    events = [{**e, "source": "api"} for e in load_maven_events(shift_dates=False)]
    expected = expected_from_csv(DATA_DIR)
    closed = sum(1 for e in events if e["type"] in ("deal.won", "deal.lost"))
    async with (
        running(create_ingest(ingest_settings)) as ingest,
        running(create_metrics(metrics_settings(iso), clock=fixed_clock(NOW))) as metrics,
    ):
        import time

        t0 = time.monotonic()
        ids = await post_events(ingest, events)
        print("posted", time.monotonic() - t0)

        async def all_deals_applied() -> bool:
            counts = (await metrics.get("/v1/kpis", headers=AUTH)).json()["events_by_type"]
            outcomes = counts.get("deal.won", 0) + counts.get("deal.lost", 0)
            return counts.get("deal.created", 0) == expected.deals["all"] and outcomes == closed

        await eventually(all_deals_applied, within=120, interval=1.0)
        print("applied", time.monotonic() - t0)
        t1 = time.monotonic()
        await metrics.get("/v1/kpis", headers=AUTH)
        print("listing", time.monotonic() - t1)
        agents = {a.removeprefix("agent:") for a in expected.deals if a.startswith("agent:")}
        yield Loaded(metrics, {a: ids[rep_source_id(a)] for a in agents}, expected)


def win_rate(exp: Expected, key: str) -> float:
    return exp.won[key] / (exp.won[key] + exp.lost[key])


async def test_win_rate_overall_by_office_and_by_agent(maven: Loaded) -> None:
    exp = maven.expected
    overall = one(await kpi(maven.metrics, "win_rate", window="all"))
    assert (overall["numerator"], overall["denominator"]) == (
        exp.won["all"],
        exp.won["all"] + exp.lost["all"],
    )
    assert overall["value"] == pytest.approx(win_rate(exp, "all"))
    teams = {v["group"]["team"]: v for v in await kpi(maven.metrics, "win_rate", group_by="team")}
    assert {t: v["value"] for t, v in teams.items()} == pytest.approx(
        {k.removeprefix("team:"): win_rate(exp, k) for k in exp.deals if k.startswith("team:")}
    )
    reps = {v["group"]["rep"]: v for v in await kpi(maven.metrics, "win_rate", group_by="rep")}
    closed_agents = [a for a in maven.rep_ids if exp.won[f"agent:{a}"] + exp.lost[f"agent:{a}"]]
    assert len(closed_agents) > 20
    for agent in closed_agents:
        found = reps[maven.rep_ids[agent]]
        assert found["numerator"] == exp.won[f"agent:{agent}"], agent
        assert found["value"] == pytest.approx(win_rate(exp, f"agent:{agent}")), agent


async def test_sales_cycle_mean_median_and_p90_by_office(maven: Loaded) -> None:
    exp = maven.expected
    for stat, compute in (
        ("mean", statistics.fmean),
        ("median", statistics.median),
        ("p90", lambda xs: statistics.quantiles(xs, n=10, method="inclusive")[-1]),
    ):
        overall = one(await kpi(maven.metrics, f"sales_cycle_{stat}"))
        assert overall["n"] == len(exp.cycles["all"])
        assert overall["value"] == pytest.approx(compute(exp.cycles["all"])), stat
        teams = await kpi(maven.metrics, f"sales_cycle_{stat}", group_by="team")
        assert {v["group"]["team"]: v["value"] for v in teams} == pytest.approx(
            {
                k.removeprefix("team:"): compute(cycles)
                for k, cycles in exp.cycles.items()
                if k.startswith("team:")
            }
        ), stat


async def test_sales_cycle_median_by_agent(maven: Loaded) -> None:
    exp = maven.expected
    reps = await kpi(maven.metrics, "sales_cycle_median", group_by="rep")
    found = {v["group"]["rep"]: v["value"] for v in reps}
    for agent, rep_id in maven.rep_ids.items():
        cycles = exp.cycles[f"agent:{agent}"]
        if cycles:
            assert found[rep_id] == pytest.approx(statistics.median(cycles)), agent


async def test_deal_conversion_by_office_and_by_agent(maven: Loaded) -> None:
    exp = maven.expected
    overall = one(await kpi(maven.metrics, "deal_conversion"))
    assert (overall["numerator"], overall["denominator"]) == (exp.won["all"], exp.deals["all"])
    teams = await kpi(maven.metrics, "deal_conversion", group_by="team")
    assert {v["group"]["team"]: (v["numerator"], v["denominator"]) for v in teams} == {
        k.removeprefix("team:"): (exp.won[k], exp.deals[k])
        for k in exp.deals
        if k.startswith("team:")
    }
    reps = await kpi(maven.metrics, "deal_conversion", group_by="rep")
    by_rep = {v["group"]["rep"]: (v["numerator"], v["denominator"]) for v in reps}
    assert by_rep == {
        maven.rep_ids[a]: (exp.won[f"agent:{a}"], exp.deals[f"agent:{a}"]) for a in maven.rep_ids
    }
