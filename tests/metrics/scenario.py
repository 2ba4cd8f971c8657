"""A small sales organisation's history that gives every KPI a value: reps in two teams,
territories, accounts, deals through stages to won and lost, leads assigned, touched and
breached, tools, forecasts, a duplicate and a poison record.

Events about one entity have distinct times, so any arrival order must give the same
projections; that is what the rebuild and out-of-order tests check."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from salesops_common.envelope import Envelope
from salesops_metrics.domain.kpis import KPIS
from salesops_metrics.testing import (
    account,
    activity,
    assigned,
    breached,
    deal,
    forecast,
    hours,
    lead,
    merged,
    rep,
    ruleset,
    territory_of,
)
from tests.support import AUTH

START = datetime(2026, 4, 1, 9, tzinfo=UTC)  # a Wednesday
EXPLICIT = (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC))


def _poison() -> Envelope:
    """A deal.won without a deal id: metrics dead-letters it."""
    subject = str(uuid.uuid4())
    return Envelope(
        type="deal.won",
        source="/ingest/api/default",
        subject=subject,
        data={"stage": "Won"},
        key=subject,
        time=START,
    )


@dataclass
class Scenario:
    seed: int = 7
    events: list[Envelope] = field(default_factory=list)
    poison: list[Envelope] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        tick = [START]

        def later(minutes: float = 7) -> datetime:
            tick[0] += timedelta(minutes=minutes)
            return tick[0]

        teams = ("East", "West")
        reps = [uuid.uuid4() for _ in range(6)]
        managers = [uuid.uuid4(), uuid.uuid4()]
        for i, rep_id in enumerate(reps):
            self.events.append(
                rep(
                    START - timedelta(days=30),
                    rep_id=rep_id,
                    active=True,
                    email=f"rep{i}@org.example",
                    team=teams[i % 2],
                    manager_id=managers[i % 2],
                    time_zone=("America/New_York", "Europe/Berlin")[i % 2],
                    working_hours=hours(),
                    licensed_tools=["crm", "dialer"] if i < 4 else ["crm"],
                )
            )
        self.events.append(
            rep(START - timedelta(days=20), rep_id=reps[5], verb="updated", team="West-2")
        )
        self.events.append(
            ruleset(
                START - timedelta(days=30),
                1,
                [
                    {"id": "north", "members": [{"email": "rep0@org.example"}]},
                    {
                        "id": "south",
                        "sla": {"first_touch_minutes": 30},
                        "members": [{"rep_id": str(r)} for r in reps[1:]],
                    },
                ],
            )
        )
        accounts = [uuid.uuid4() for _ in range(4)]
        for i, account_id in enumerate(accounts):
            self.events.append(
                account(
                    START - timedelta(days=25),
                    account_id=account_id,
                    industry=("software", "retail")[i % 2],
                    employees=(40, 400, 4000, 40000)[i],
                )
            )
            if i < 3:
                self.events.append(
                    territory_of(
                        START - timedelta(days=24),
                        account_id=account_id,
                        territory=("north", "south", "south")[i],
                    )
                )
        leads = [uuid.uuid4() for _ in range(24)]
        for i, lead_id in enumerate(leads):
            created = later(37)
            self.events.append(
                lead(
                    created,
                    lead_id=lead_id,
                    created_at=created,
                    lead_source=("Web", "Event", "Referral")[i % 3],
                    account_id=accounts[i % 4] if i % 5 else None,
                    industry="finance",
                    employees=10,
                )
            )
            owner = reps[i % 6]
            if i % 7 == 3:
                self.events.append(
                    assigned(created + timedelta(minutes=1), lead_id=lead_id, rep_id=None)
                )
                continue
            self.events.append(
                assigned(
                    created + timedelta(minutes=rng.randint(1, 9)),
                    lead_id=lead_id,
                    rep_id=owner,
                    territory=("north", "south")[i % 2],
                )
            )
            if i % 4 == 1:
                self.events.append(
                    breached(
                        created + timedelta(minutes=31),
                        lead_id=lead_id,
                        rep_id=owner,
                        territory="south",
                    )
                )
                owner = reps[(i + 1) % 6]
                self.events.append(
                    assigned(
                        created + timedelta(minutes=31),
                        lead_id=lead_id,
                        rep_id=owner,
                        territory="south",
                        again=True,
                    )
                )
            if i % 3:
                touched = created + timedelta(minutes=rng.randint(5, 3000))
                self.events.append(
                    activity(
                        touched, rep_id=owner, lead_id=lead_id, tool=("crm", "dialer", "CRM")[i % 3]
                    )
                )
            if i % 6 == 2:
                self.events.append(
                    lead(created + timedelta(hours=2), lead_id=lead_id, verb="converted")
                )
        self.events.append(merged(later(), lead_id=uuid.uuid4(), into=leads[0]))
        self.events.append(lead(later(), lead_id=leads[-1], verb="deleted"))
        stages = ("Prospecting", "Qualification", "Proposal")
        for i in range(30):
            deal_id = uuid.uuid4()
            created = START + timedelta(days=i * 3)
            amount = 1000 + 250 * i
            fields: dict[str, Any] = {
                "owner_id": reps[i % 6],
                "amount": amount,
                "currency": "EUR" if i % 10 == 9 else "USD",
                "created_at": created,
                "stage": stages[0],
                "lead_id": leads[i] if i < 5 else None,
                "expected_close_date": (created + timedelta(days=60)).date() if i % 2 else None,
            }
            if i % 4:
                fields["account_id"] = accounts[i % 4]
            self.events.append(deal(created, deal_id=deal_id, **fields))
            reached = rng.randint(0, 2)
            for step in range(1, reached + 1):
                self.events.append(
                    deal(
                        created + timedelta(days=step),
                        deal_id=deal_id,
                        verb="stage_changed",
                        stage=stages[step],
                    )
                )
            closed = created + timedelta(days=5 + (i * 7) % 40)
            if i % 3 == 0:
                self.events.append(
                    deal(closed, deal_id=deal_id, verb="won", stage="Won", closed_at=closed)
                )
            elif i % 3 == 1:
                self.events.append(
                    deal(closed, deal_id=deal_id, verb="lost", stage="Lost", closed_at=closed)
                )
            if i == 4:
                self.events.append(
                    deal(
                        closed + timedelta(days=1),
                        deal_id=deal_id,
                        verb="stage_changed",
                        stage="Proposal",
                    )
                )
            if i == 7:
                self.events.append(
                    deal(closed + timedelta(days=1), deal_id=deal_id, verb="deleted")
                )
        for period, point, as_of in (
            ("2026-05", "9000", "2026-04-20"),
            ("2026-Q2", "30000", "2026-03-31"),
        ):
            when = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
            self.events.append(forecast(when, period=period, point=point))
            self.events.append(
                forecast(when, period=period, point="4000", kind="team", scope_id="East")
            )
            self.events.append(
                forecast(when, period=period, point="5000", kind="team", scope_id="West")
            )
        self.poison = [_poison()]

    def shuffled(self, *, duplicates: float = 0.3) -> list[Envelope]:
        """Every event in a random order, a share of them twice (the same ce_id)."""
        rng = random.Random(self.seed + 1)
        events = [*self.events, *self.poison]
        again = rng.sample(events, int(len(events) * duplicates))
        mixed = events + again
        rng.shuffle(mixed)
        return mixed


QUOTAS = {
    "quotas": [
        {"period": "2026-Q4", "scope": {"kind": "company"}, "amount": "50000"},
        {"period": "2026-Q4", "scope": {"kind": "team", "id": "East"}, "amount": "20000"},
        {"period": "2026-Q3", "scope": {"kind": "team", "id": "West"}, "amount": "10000"},
    ]
}
RATES = {"rates": {"EUR": "1.1"}}


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    """Every KPI, every grouping it supports, over all time and over an explicit window."""
    out: dict[str, Any] = {}
    start, end = (t.isoformat() for t in EXPLICIT)
    for name, kpi in KPIS.items():
        for by in (None, *kpi.group_by):
            for window in ({}, {"from": start, "to": end}):
                params = {"kpi": name, **window, **({"group_by": by} if by else {})}
                resp = await client.get("/v1/kpis", params=params, headers=AUTH)
                assert resp.status_code == 200, resp.text
                out[f"{name}/{by}/{bool(window)}"] = resp.json()["values"]
    listing = (await client.get("/v1/kpis", headers=AUTH)).json()
    out["events_by_type"] = listing["events_by_type"]
    return out
