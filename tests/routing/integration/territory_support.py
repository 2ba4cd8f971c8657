"""What the territory, availability, account, ruleset and simulation scenarios share: leads
and accounts as ingest publishes them, territory models as an admin writes them, the
routing REST calls, and a quick look at routing's topic."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from salesops_common.envelope import Envelope
from salesops_common.events import Account, Lead, Rep
from salesops_common.settings import database_dsn
from tests.routing.integration.helpers import assignment, assignments, crm, hire, put_on_crm
from tests.support import AUTH, Isolation, eventually, read_topic

RULESET = "/v1/routing/ruleset"


# --- CRM events -------------------------------------------------------------------------


def lead(source_id: str, **attributes: Any) -> Lead:
    """A new lead with the attributes routing decides on (country, postal_code, ...)."""
    attributes.setdefault("email", f"{source_id.lower()}@prospect.example")
    return Lead(id=uuid.uuid4(), source="api", source_id=source_id, **attributes)


def account(source_id: str, **attributes: Any) -> Account:
    return Account(id=uuid.uuid4(), source="api", source_id=source_id, **attributes)


async def route(
    iso: Isolation, client: httpx.AsyncClient, leads: Sequence[Lead]
) -> list[dict[str, Any]]:
    """Put the leads on the CRM topic together and return their assignments, in order."""
    await put_on_crm(iso, [crm("lead.created", one) for one in leads])
    return await assignments(client, leads)


async def route_each(
    iso: Isolation, client: httpx.AsyncClient, leads: Sequence[Lead]
) -> list[dict[str, Any]]:
    """One lead after the other, each assigned before the next arrives: the order of the
    returned assignments is the order of the decisions."""
    shown = []
    for one in leads:
        shown += await route(iso, client, [one])
    return shown


def rep_of(shown: dict[str, Any]) -> str | None:
    rep_id: str | None = shown["rep_id"]
    return rep_id


def reps_of(shown: Iterable[dict[str, Any]]) -> list[str | None]:
    return [rep_of(a) for a in shown]


def skipped(shown: dict[str, Any]) -> dict[str, str]:
    """Reason code of every rep the decision passed over, by rep id, in any territory tried."""
    return {
        entry["rep_id"]: entry["reason"]
        for tried in shown["explanation"]["territories_tried"]
        for entry in tried["skipped"]
    }


def skip_detail(shown: dict[str, Any], rep: Rep) -> str:
    for tried in shown["explanation"]["territories_tried"]:
        for entry in tried["skipped"]:
            if entry["rep_id"] == str(rep.id):
                detail: str = entry["detail"]
                return detail
    raise AssertionError(f"{rep.name} was not skipped: {shown['explanation']}")


async def closed(client: httpx.AsyncClient, lead_id: UUID, status: str) -> None:
    """Wait until routing counts the lead as no longer open."""

    async def done() -> bool:
        found = await assignment(client, lead_id)
        return found is not None and found["status"] == status

    await eventually(done, within=60)


# --- territory models -------------------------------------------------------------------


def members(*reps: Rep, weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
    weights = weights or [1.0] * len(reps)
    return [{"rep_id": str(r.id), "weight": w} for r, w in zip(reps, weights, strict=True)]


def territory(
    territory_id: str, reps: Sequence[Rep] = (), *rules: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """A territory as written in a ruleset: its reps (weight 1 unless ``members`` is given)
    and its rules, plus any other field (priority, parent, strategy, catch_up...)."""
    body: dict[str, Any] = {"id": territory_id, "rules": list(rules), **fields}
    body.setdefault("members", members(*reps))
    return body


def ruleset(*territories: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"territories": list(territories), **fields}


async def put_ruleset(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Import a model; it must be accepted (warnings allowed)."""
    resp = await client.put(RULESET, json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    published: dict[str, Any] = resp.json()
    return published


async def open_territories(
    iso: Isolation,
    client: httpx.AsyncClient,
    reps: Sequence[Rep],
    *territories: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """Hire the reps (in rotation order) and import a model of these territories."""
    await hire(iso, client, reps)
    return await put_ruleset(client, ruleset(*territories, **fields))


async def current_version(client: httpx.AsyncClient) -> int:
    resp = await client.get(RULESET, headers=AUTH)
    assert resp.status_code == 200, resp.text
    version: int = resp.json()["version"]
    return version


def codes(findings: Iterable[dict[str, Any]], severity: str | None = None) -> list[str]:
    return [f["code"] for f in findings if severity in (None, f["severity"])]


# --- reps' routing attributes -----------------------------------------------------------


async def set_routing(client: httpx.AsyncClient, rep: Rep, **attributes: Any) -> dict[str, Any]:
    resp = await client.patch(f"/v1/reps/{rep.id}/routing", json=attributes, headers=AUTH)
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


def away_now(note: str = "holiday") -> list[dict[str, Any]]:
    """An out-of-office period that started yesterday and ends in a week."""
    now = datetime.now(UTC)
    return [
        {
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=7)).isoformat(),
            "note": note,
        }
    ]


def hours_around_now(zone: str, *, hours: int = 3, later: int = 0) -> dict[str, Any]:
    """Working hours every day from ``hours`` before to ``hours`` after the current time in
    ``zone``, or ``later`` hours from now (an overnight shift where that crosses midnight)."""
    local = datetime.now(ZoneInfo(zone)) + timedelta(hours=later)
    start = (local - timedelta(hours=hours)).strftime("%H:00")
    end = (local + timedelta(hours=hours + 1)).strftime("%H:00")
    return {"start": start, "end": end, "days": [1, 2, 3, 4, 5, 6, 7]}


# --- routing's topic --------------------------------------------------------------------


async def routing_events(
    iso: Isolation,
    until: Callable[[list[Envelope]], bool],
    *,
    within: float = 60,
    settle: bool = False,
) -> list[Envelope]:
    """Read salesops.routing.v1 from the start until ``until`` holds (``settle``: then on to
    the end of every partition, for assertions that something was *not* published)."""
    topic = iso.topic("salesops.routing.v1")
    return await read_topic(iso.bootstrap, topic, until=until, within=within, settle=settle)


def of_type(events: Iterable[Envelope], type_name: str) -> list[Envelope]:
    return [e for e in events if e.type == type_name]


def about_lead(events: Iterable[Envelope], lead_id: UUID, type_name: str) -> list[Envelope]:
    return [e for e in of_type(events, type_name) if e.data.get("lead_id") == str(lead_id)]


def has_lead_facts(
    *wanted: tuple[UUID, str],
) -> Callable[[list[Envelope]], bool]:
    """Read until every (lead id, event type) pair has been seen."""

    def enough(seen: list[Envelope]) -> bool:
        return all(about_lead(seen, lead_id, name) for lead_id, name in wanted)

    return enough


# --- routing's database -----------------------------------------------------------------


async def rows_in(iso: Isolation, table: str) -> int:
    """How many rows a table of routing's database holds (what no REST view counts)."""
    assert table.isidentifier()
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("routing")))
    try:
        count: int = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
    finally:
        await conn.close()
    return count
