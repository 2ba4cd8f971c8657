"""A generated sales organisation's history, as the events metrics consumes: reps in teams
under managers, a ruleset of territories with those reps as members, accounts assigned to
territories, a year of deals through stages to won or lost, leads assigned, touched through
tools, breached and converted, forecasts, and the quotas and rates set over REST.

Used by the metrics benchmarks to fill a database of a known size (written straight through
metrics' projection code, as its consumer would, without the broker), and to make the events
that ingest is fed during the freshness run.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from salesops_common.envelope import Envelope
from salesops_common.events import WorkingHours
from salesops_metrics import testing as sample

STAGES = ("Prospecting", "Qualification", "Proposal", "Negotiation")
SOURCES = ("Web", "Referral", "Event", "Partner", "Outbound", "Ads")
INDUSTRIES = ("software", "retail", "finance", "health", "manufacturing", "media", "energy")
TOOLS = ("crm", "dialer", "email", "linkedin", "video")
REP_FIELDS = (
    "email",
    "name",
    "active",
    "role",
    "team",
    "time_zone",
    "working_hours",
    "licensed_tools",
)
ZONES = ("America/New_York", "America/Chicago", "Europe/Berlin", "Europe/London", "Asia/Tokyo")


@dataclass(frozen=True)
class Size:
    reps: int = 500
    territories: int = 100
    teams: int = 50
    accounts: int = 5_000
    deals: int = 50_000  # created over ``days``
    leads: int = 100_000
    days: int = 365

    def describe(self) -> str:
        return (
            f"{self.reps:,} reps in {self.teams} teams, {self.territories} territories, "
            f"{self.accounts:,} accounts, {self.deals:,} deals and {self.leads:,} leads "
            f"created over {self.days} days"
        )


@dataclass
class Org:
    """The roster; ``history`` yields its events."""

    size: Size
    now: datetime
    seed: int = 5
    reps: list[UUID] = field(default_factory=list)
    accounts: list[UUID] = field(default_factory=list)
    territory_of_rep: dict[UUID, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.reps = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(self.size.reps)]
        self.accounts = [
            uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(self.size.accounts)
        ]
        for i, rep_id in enumerate(self.reps):
            self.territory_of_rep[rep_id] = territory_name(i % self.size.territories)

    def use_reps(self, rep_ids: list[UUID]) -> None:
        """Reps known by other ids (ingest's, when they were created through it)."""
        self.reps = list(rep_ids)
        self.territory_of_rep = {
            rep_id: territory_name(i % self.size.territories) for i, rep_id in enumerate(rep_ids)
        }

    def rep_api_events(self, tenant: str) -> list[dict[str, Any]]:
        """The reps as ``POST /v1/events`` takes them (managers are the first ``teams``)."""
        at = (self.now - timedelta(days=self.size.days + 30)).isoformat()
        out = []
        for i in range(self.size.reps):
            rep = self._rep(i, uuid.uuid4(), self.now).data
            data = {k: rep[k] for k in REP_FIELDS if k in rep}
            data.update(source_id=rep_source_id(i))
            if i >= self.size.teams:
                data["manager_source_id"] = rep_source_id(i % self.size.teams)
            event = {"type": "rep.created", "source": "api", "tenant": tenant}
            out.append({**event, "source_event_id": f"rep-{i}", "occurred_at": at, "data": data})
        return out

    def roster(self, *, reps: bool = True) -> list[Envelope]:
        """Reps (unless created otherwise), the ruleset, accounts and their territories,
        forecasts."""
        start = self.now - timedelta(days=self.size.days + 30)
        events = [self._rep(i, rep_id, start) for i, rep_id in enumerate(self.reps)] if reps else []
        events.append(self._ruleset(start))
        rng = random.Random(self.seed + 1)
        for i, account_id in enumerate(self.accounts):
            industry, employees = rng.choice(INDUSTRIES), rng.choice((12, 80, 400, 2000, 9000))
            events.append(
                sample.account(
                    start,
                    account_id=account_id,
                    source_id=f"acc-{i}",
                    industry=industry,
                    employees=employees,
                )
            )
            if i % 10:
                territory = territory_name(rng.randrange(self.size.territories))
                events.append(
                    sample.territory_of(start, account_id=account_id, territory=territory)
                )
        events += self._forecasts()
        return events

    def _rep(self, i: int, rep_id: UUID, at: datetime) -> Envelope:
        teams = self.size.teams
        return sample.rep(
            at,
            rep_id=rep_id,
            source_id=f"rep-{i}",
            email=f"rep{i}@bench-org.example",
            name=f"Rep {i}",
            active=i % 25 != 24,
            role="rep",
            manager_id=self.reps[(i % teams)] if i >= teams else None,
            team=f"team-{i % teams:02d}",
            time_zone=ZONES[i % len(ZONES)],
            working_hours=WorkingHours(),
            licensed_tools=list(TOOLS[: 2 + i % 4]),
        )

    def _ruleset(self, at: datetime) -> Envelope:
        members: dict[str, list[dict[str, Any]]] = {}
        for rep_id, territory in self.territory_of_rep.items():
            members.setdefault(territory, []).append({"rep_id": str(rep_id)})
        territories = [
            {
                "id": territory_name(t),
                "sla": {"first_touch_minutes": 30 + 15 * (t % 4)},
                "members": members.get(territory_name(t), []),
            }
            for t in range(self.size.territories)
        ]
        return sample.ruleset(at, 1, territories)

    def _forecasts(self) -> list[Envelope]:
        out = []
        month = self.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
        for back in range(1, 13):
            index = month.year * 12 + month.month - 1 - back
            year, m = divmod(index, 12)
            period = f"{year}-{m + 1:02d}"
            as_of = datetime(year, m + 1, 1, tzinfo=UTC) - timedelta(days=3)
            out.append(sample.forecast(as_of, period=period, point="400000"))
            for t in range(5):
                team = f"team-{t:02d}"
                out.append(
                    sample.forecast(as_of, period=period, point="40000", kind="team", scope_id=team)
                )
        return out

    def history(self) -> Iterator[Envelope]:
        """Deals and leads created over the last ``days``, each with what followed."""
        rng = random.Random(self.seed + 2)
        size = self.size
        total = size.deals + size.leads
        for n in range(total):
            created = (
                self.now
                - timedelta(days=size.days)
                + timedelta(seconds=(n + rng.random()) * size.days * 86_400 / total)
            )
            if rng.random() < size.deals / total:
                yield from self.deal(rng, created)
            else:
                yield from self.lead(rng, created)

    def deal(self, rng: random.Random, created: datetime) -> list[Envelope]:
        deal_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        owner = rng.choice(self.reps)
        fields: dict[str, Any] = {
            "owner_id": owner,
            "amount": Decimal(rng.randrange(1_000, 200_000, 50)),
            "currency": "EUR" if rng.random() < 0.2 else "USD",
            "created_at": created,
            "stage": STAGES[0],
            "expected_close_date": (created + timedelta(days=rng.randint(20, 120))).date(),
        }
        if rng.random() < 0.8:
            fields["account_id"] = rng.choice(self.accounts)
        events = [sample.deal(created, deal_id=deal_id, **fields)]
        at = created
        for stage in STAGES[1 : 1 + rng.randint(0, 3)]:
            at += timedelta(days=rng.uniform(1, 15))
            events.append(sample.deal(at, deal_id=deal_id, verb="stage_changed", stage=stage))
        closing = at + timedelta(days=rng.uniform(1, 60))
        if closing < self.now and rng.random() < 0.85:
            verb = "won" if rng.random() < 0.4 else "lost"
            stage = verb.capitalize()
            events.append(
                sample.deal(closing, deal_id=deal_id, verb=verb, stage=stage, closed_at=closing)
            )
        return [e for e in events if e.time < self.now]

    def lead(self, rng: random.Random, created: datetime) -> list[Envelope]:
        lead_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        events = [
            sample.lead(
                created,
                lead_id=lead_id,
                lead_source=rng.choice(SOURCES),
                industry=rng.choice(INDUSTRIES),
                employees=rng.choice((5, 60, 300, 1500, 6000)),
                account_id=rng.choice(self.accounts) if rng.random() < 0.3 else None,
                created_at=created,
            )
        ]
        if rng.random() < 0.05:  # the fallback queue
            events.append(
                sample.assigned(created + timedelta(seconds=2), lead_id=lead_id, rep_id=None)
            )
            return [e for e in events if e.time < self.now]
        rep_id = rng.choice(self.reps)
        assigned_at = created + timedelta(seconds=rng.uniform(0.5, 90))
        territory = self.territory_of_rep[rep_id]
        events.append(
            sample.assigned(assigned_at, lead_id=lead_id, rep_id=rep_id, territory=territory)
        )
        if rng.random() < 0.1:
            breach = assigned_at + timedelta(minutes=30)
            events.append(
                sample.breached(breach, lead_id=lead_id, rep_id=rep_id, territory=territory)
            )
            rep_id = rng.choice(self.reps)
            territory = self.territory_of_rep[rep_id]
            again = sample.assigned(
                breach, lead_id=lead_id, rep_id=rep_id, territory=territory, again=True
            )
            events.append(again)
        if rng.random() < 0.85:
            touched = assigned_at + timedelta(minutes=rng.expovariate(1 / 240))
            events.append(
                sample.activity(touched, rep_id=rep_id, lead_id=lead_id, tool=rng.choice(TOOLS))
            )
            if rng.random() < 0.3:
                later = touched + timedelta(hours=rng.uniform(1, 72))
                tool = rng.choice(TOOLS)
                events.append(sample.activity(later, rep_id=rep_id, lead_id=lead_id, tool=tool))
        if rng.random() < 0.15:
            at = created + timedelta(days=rng.uniform(1, 20))
            events.append(sample.lead(at, lead_id=lead_id, verb="converted"))
        return [e for e in events if e.time < self.now]


def territory_name(n: int) -> str:
    return f"t-{n:03d}"


def rep_source_id(n: int) -> str:
    return f"rep-{n}"
