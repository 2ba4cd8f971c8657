"""The Maven CRM sample as ingest API events: pure and deterministic.

Reading the four CSV files is the only I/O. The same files, ``today`` and seed give the same
list, byte for byte, so a second ``salesops demo`` is all duplicates. The data's README (in
``demo_data/maven-crm``) says what is taken as found and what is generated.
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "demo_data" / "maven-crm"
SOURCE = "csv"
TENANT = "maven-demo"
CURRENCY = "USD"
REP_DOMAIN = "maven-demo.example"
TIME_ZONES = {
    "Central": "America/Chicago",
    "East": "America/New_York",
    "West": "America/Los_Angeles",
}
CLOSED_STAGES = ("Won", "Lost")
# The stage of an engaged deal until it closes: a closed deal is created in it, as a CRM
# would have reported it then (created already Won or Lost, it would tell whoever reads
# the events during the import how it ended).
ENGAGED_STAGE = "Engaging"
# The pipeline spells one product differently from products.csv; the price list wins.
PRODUCT_NAMES = {"GTXPro": "GTX Pro"}
# Reps and accounts exist a while before the first deal is engaged.
ROSTER_LEAD_TIME = timedelta(days=30)
LEAD_WINDOW = timedelta(days=30)
LEADS_PER_ACCOUNT = (2, 5)
PROSPECT_LEADS = 30
FREE_MAIL_SHARE = 1 / 3

FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Grace", "Hugo", "Ines", "Jon",
    "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Rossi", "Silva",
    "Tanaka", "Weber",
)  # fmt: skip
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
LEAD_SOURCES = ("Web", "Referral", "Event", "Outbound", "Partner")
PROSPECTS = (
    "Northwind Traders", "Blue Yonder Labs", "Contoso Freight", "Fabrikam Foods",
    "Tailspin Tools", "Wingtip Outdoors", "Litware Health", "Proseware Media",
    "Adventure Works", "Coho Vineyard", "Lucerne Publishing", "Margie's Travel",
)  # fmt: skip
PROSPECT_COUNTRIES = ("United States", "Canada", "United Kingdom", "Germany", "Japan", "Brazil")
PROSPECT_INDUSTRIES = ("retail", "software", "medical", "finance", "marketing", "services")

Event = dict[str, Any]
Row = dict[str, str]


def slug(text: str) -> str:
    """Lower-case words joined by hyphens: a stable id or domain part from a name.
    Apostrophes go first, so that "Margie's" reads "margies", not "margie-s"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "")).strip("-")


def rep_source_id(agent: str) -> str:
    return f"rep-{slug(agent)}"


def manager_source_id(manager: str) -> str:
    return f"mgr-{slug(manager)}"


def account_source_id(account: str) -> str:
    return f"acct-{slug(account)}"


def account_domain(account: str) -> str:
    # Maven has no web domains; .example is reserved, so nothing real is ever named.
    return f"{slug(account)}.example"


def money(value: Decimal) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class MavenData:
    """The four CSV files as found."""

    pipeline: list[Row]
    accounts: list[Row]
    teams: list[Row]
    list_prices: dict[str, Decimal]

    @classmethod
    def read(cls, data_dir: Path) -> MavenData:
        prices = {r["product"]: Decimal(r["sales_price"]) for r in _rows(data_dir, "products.csv")}
        return cls(
            pipeline=_rows(data_dir, "sales_pipeline.csv"),
            accounts=_rows(data_dir, "accounts.csv"),
            teams=_rows(data_dir, "sales_teams.csv"),
            list_prices=prices,
        )

    def newest_date(self) -> date:
        """The snapshot day: the newest engage or close date in the pipeline."""
        return max(d for row in self.pipeline for d in _deal_days(row) if d)

    def earliest_engagement(self) -> date:
        return min(d for row in self.pipeline if (d := _day(row["engage_date"])))


def _rows(data_dir: Path, name: str) -> list[Row]:
    with open(data_dir / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _day(value: str) -> date | None:
    return date.fromisoformat(value) if value else None


def _deal_days(row: Row) -> tuple[date | None, date | None]:
    return _day(row["engage_date"]), _day(row["close_date"])


@dataclass(frozen=True)
class Calendar:
    """Moves every date by one whole number of days (zero keeps them as found)."""

    shift: timedelta

    def day(self, value: date) -> date:
        return value + self.shift

    def midnight(self, value: date) -> datetime:
        return datetime.combine(self.day(value), time(), UTC)

    def stamp(self, value: date) -> str:
        return self.midnight(value).isoformat()


@dataclass(frozen=True)
class MavenSummary:
    """What a list of Maven events holds, by kind of record."""

    reps: int
    accounts: int
    deals: int
    won: int
    lost: int
    leads: int

    @classmethod
    def of(cls, events: Iterable[Event]) -> MavenSummary:
        by_type = Counter(e["type"] for e in events)
        return cls(
            reps=by_type["rep.created"],
            accounts=by_type["account.created"],
            deals=by_type["deal.created"],
            won=by_type["deal.won"],
            lost=by_type["deal.lost"],
            leads=by_type["lead.created"],
        )

    @property
    def total(self) -> int:
        return self.reps + self.accounts + self.deals + self.won + self.lost + self.leads


def _event(type_name: str, source_event_id: str, occurred_at: str, data: dict[str, Any]) -> Event:
    return {
        "type": type_name,
        "source": SOURCE,
        "tenant": TENANT,
        "source_event_id": source_event_id,
        "occurred_at": occurred_at,
        "data": data,
    }


# --- reps -----------------------------------------------------------------------------------


def _person(source_id: str, name: str, office: str, role: str) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": name,
        "email": ".".join(slug(part) for part in name.split()) + f"@{REP_DOMAIN}",
        "active": True,
        "role": role,
        "team": office,
        "time_zone": TIME_ZONES.get(office, "UTC"),
        "working_hours": {"start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5]},
        "licensed_tools": ["crm", "email"],
    }


def _rep_event(person: dict[str, Any], at: str) -> Event:
    return _event("rep.created", f"rep:{person['source_id']}:created", at, person)


def rep_events(teams: list[Row], at: str) -> Iterator[Event]:
    """Managers first (by name), so that every rep's manager already exists."""
    offices: dict[str, str] = {}
    for team in teams:
        offices.setdefault(team["manager"], team["regional_office"])
    for name in sorted(offices):
        yield _rep_event(_person(manager_source_id(name), name, offices[name], "manager"), at)
    for team in teams:
        agent = team["sales_agent"]
        person = _person(rep_source_id(agent), agent, team["regional_office"], "rep")
        person["manager_source_id"] = manager_source_id(team["manager"])
        yield _rep_event(person, at)


# --- accounts -------------------------------------------------------------------------------


def parents_first(accounts: list[Row]) -> list[Row]:
    """Parents before their subsidiaries, otherwise as found: a consumer applying the events
    in order never meets a parent it does not know yet."""
    parent_of = {row["account"]: row["subsidiary_of"] for row in accounts}

    def depth(name: str) -> int:
        ancestors: set[str] = set()
        while (name := parent_of.get(name, "")) and name not in ancestors:
            ancestors.add(name)
        return len(ancestors)

    return sorted(accounts, key=lambda row: depth(row["account"]))


def account_events(accounts: list[Row], at: str) -> Iterator[Event]:
    for row in parents_first(accounts):
        data: dict[str, Any] = {
            "source_id": account_source_id(row["account"]),
            "name": row["account"],
            "domain": account_domain(row["account"]),
            "industry": row["sector"],  # as found, `technolgy` included
            "employees": int(row["employees"]),
            "annual_revenue": money(Decimal(row["revenue"]) * 1_000_000),  # given in millions
            "currency": CURRENCY,
            "country": row["office_location"],
            "year_established": int(row["year_established"]),
            "created_at": at,
        }
        if row["subsidiary_of"]:
            data["parent_source_id"] = account_source_id(row["subsidiary_of"])
        yield _event("account.created", f"account:{data['source_id']}:created", at, data)


# --- deals ----------------------------------------------------------------------------------


def product_name(pipeline_product: str) -> str:
    return PRODUCT_NAMES.get(pipeline_product, pipeline_product)


def _deal(row: Row, prices: dict[str, Decimal], cal: Calendar) -> dict[str, Any]:
    product = product_name(row["product"])
    engaged, closed = _deal_days(row)
    is_closed = row["deal_stage"] in CLOSED_STAGES
    data: dict[str, Any] = {
        "source_id": row["opportunity_id"],
        "name": f"{product} for {row['account']}" if row["account"] else f"{product} deal",
        "owner_source_id": rep_source_id(row["sales_agent"]),
        "product": product,
        "stage": row["deal_stage"],
        # Open deals have no close value: the list price is the best amount the sample has.
        "amount": money(Decimal(row["close_value"] or 0) if is_closed else prices[product]),
        "currency": CURRENCY,
        "created_at": cal.stamp(engaged) if engaged else None,
        "closed_at": cal.stamp(closed) if is_closed and closed else None,
    }
    if row["account"]:
        data["account_source_id"] = account_source_id(row["account"])
    if not is_closed:
        data["amount_is_list_price"] = True
    return data


def _as_created(deal: dict[str, Any], prices: dict[str, Decimal]) -> dict[str, Any]:
    """The deal as it was when created: a closed one Engaging at its product's list price
    (the sample has no other amount for an open deal) until its outcome event says how it
    ended and for how much."""
    if not deal["closed_at"]:
        return deal
    list_price = money(prices[deal["product"]])
    return {
        **deal,
        "stage": ENGAGED_STAGE,
        "amount": list_price,
        "amount_is_list_price": True,
        "closed_at": None,
    }


OUTCOME_FIELDS = (
    "source_id", "stage", "amount", "currency", "closed_at", "owner_source_id",
    "account_source_id",
)  # fmt: skip


def deal_events(row: Row, prices: dict[str, Decimal], cal: Calendar, snapshot: str) -> list[Event]:
    """deal.created as the deal was created, then deal.won or deal.lost with the closing
    stage, value and day when the deal is closed."""
    deal = _deal(row, prices, cal)
    key = f"deal:{deal['source_id']}"
    created = _as_created(deal, prices)
    # A deal not yet engaged is only known to exist as of the snapshot.
    events = [_event("deal.created", f"{key}:created", deal["created_at"] or snapshot, created)]
    if closed_at := deal["closed_at"]:
        outcome = deal["stage"].lower()
        closing = {k: deal[k] for k in OUTCOME_FIELDS if k in deal}
        closing["amount_is_list_price"] = False
        events.append(_event(f"deal.{outcome}", f"{key}:{outcome}", closed_at, closing))
    return events


def _pipeline_order(event: Event) -> tuple[str, bool, str]:
    # Same-offset RFC 3339 strings sort as times; a deal's creation comes before its outcome.
    is_outcome = event["type"] != "deal.created"
    return event["occurred_at"], is_outcome, event["source_event_id"]


# --- generated leads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    name: str
    domain: str | None  # None: the lead writes from a free-mail address
    country: str
    industry: str
    employees: int


class LeadMaker:
    """Invents leads from one seeded generator: the sample has none, and routing needs some."""

    def __init__(self, seed: int, snapshot: datetime) -> None:
        self.rng = random.Random(seed)
        self.snapshot = snapshot
        self.emails: set[str] = set()

    def for_accounts(self, accounts: list[Row]) -> Iterator[dict[str, Any]]:
        for row in accounts:
            company = Company(
                row["account"],
                account_domain(row["account"]),
                row["office_location"],
                row["sector"],
                int(row["employees"]),
            )
            for _ in range(self.rng.randint(*LEADS_PER_ACCOUNT)):
                yield self.lead(company)

    def for_prospects(self, count: int) -> Iterator[dict[str, Any]]:
        """Companies that are not accounts: what a web form or an event brings in."""
        for _ in range(count):
            name = self.rng.choice(PROSPECTS)
            free_mail = self.rng.random() < FREE_MAIL_SHARE
            company = Company(
                name,
                None if free_mail else f"{slug(name)}.example",
                self.rng.choice(PROSPECT_COUNTRIES),
                self.rng.choice(PROSPECT_INDUSTRIES),
                self.rng.randint(5, 5000),
            )
            yield self.lead(company)

    def lead(self, company: Company) -> dict[str, Any]:
        first, last, email = self._person(company.domain or self.rng.choice(FREE_MAIL))
        window = int(LEAD_WINDOW.total_seconds())
        created = self.snapshot - timedelta(seconds=self.rng.randrange(1, window))
        data: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email": email,
            "company": company.name,
            "country": company.country,
            "industry": company.industry,
            "employees": company.employees,
            "lead_source": self.rng.choice(LEAD_SOURCES),
            "status": "new",
            "generated": True,
            "created_at": created.isoformat(),
        }
        if company.domain:
            data["website"] = f"https://{company.domain}"
        return data

    def _person(self, mail_domain: str) -> tuple[str, str, str]:
        """A name whose address is not taken yet: two invented people never share a mailbox,
        which a dedupe on email would otherwise merge."""
        for _ in range(len(FIRST_NAMES) * len(LAST_NAMES)):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            email = f"{first.lower()}.{last.lower()}@{mail_domain}"
            if email not in self.emails:
                self.emails.add(email)
                return first, last, email
        raise ValueError(f"no unused name left for {mail_domain}")


def lead_events(accounts: list[Row], seed: int, snapshot: datetime) -> list[Event]:
    """Leads by creation time, numbered in that order."""
    maker = LeadMaker(seed, snapshot)
    leads = [*maker.for_accounts(accounts), *maker.for_prospects(PROSPECT_LEADS)]
    leads.sort(key=lambda lead: str(lead["created_at"]))
    events = []
    for n, lead in enumerate(leads, start=1):
        source_id = f"gen-lead-{n}"
        data = {"source_id": source_id, **lead}
        events.append(_event("lead.created", f"lead:{source_id}:created", lead["created_at"], data))
    return events


# --- all together ---------------------------------------------------------------------------


def calendar_for(newest: date, *, today: date | None, shift_dates: bool) -> Calendar:
    """One whole-day shift that puts the newest date on today: rolling windows see data."""
    if not shift_dates:
        return Calendar(timedelta())
    return Calendar((today or datetime.now(UTC).date()) - newest)


def load_maven_events(
    *,
    data_dir: Path | None = None,
    today: date | None = None,
    shift_dates: bool = True,
    seed: int = 2017,
) -> list[Event]:
    """Reps (managers first), accounts, deals and their outcomes in time order, then the
    generated leads in time order: the same list for the same files, ``today`` and seed."""
    maven = MavenData.read(data_dir or DATA_DIR)
    newest = maven.newest_date()
    cal = calendar_for(newest, today=today, shift_dates=shift_dates)
    roster_at = cal.stamp(maven.earliest_engagement() - ROSTER_LEAD_TIME)
    snapshot = cal.midnight(newest)
    deals = [
        event
        for row in maven.pipeline
        for event in deal_events(row, maven.list_prices, cal, snapshot.isoformat())
    ]
    return [
        *rep_events(maven.teams, roster_at),
        *account_events(maven.accounts, roster_at),
        *sorted(deals, key=_pipeline_order),
        *lead_events(maven.accounts, seed, snapshot),
    ]
