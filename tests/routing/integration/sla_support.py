"""What the SLA and notification tests share: a routing service with short polls, a
territory with an SLA, leads and activities as ingest publishes them, routing's facts, and a
look at the SLA timers in routing's database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from salesops_common.envelope import Envelope
from salesops_common.events import Activity, Lead, Rep
from salesops_common.settings import database_dsn
from salesops_routing.config import RoutingSettings
from tests.routing.integration.helpers import crm, hire, put_on_crm
from tests.support import AUTH, Isolation, read_topic

TEAM = "emea-sales"


def fast_settings(iso: Isolation, **changes: Any) -> RoutingSettings:
    """Timers and deliveries looked at five times a second, retries a few ms apart."""
    values: dict[str, Any] = {
        "sla_poll_seconds": 0.2,
        "notify_poll_seconds": 0.2,
        "notify_backoff_seconds": 0.05,
        "notify_timeout_seconds": 2.0,
        **changes,
    }
    return RoutingSettings(database=iso.database("routing"), **iso.settings_kwargs(), **values)


def territory(
    reps: Sequence[Rep],
    *,
    first_touch_minutes: float | None = 0.02,
    max_reassignments: int = 1,
    team: str = TEAM,
) -> dict[str, Any]:
    """Germany's territory, its reps in rotation, with a first-touch SLA (0.02 min = 1.2 s;
    None: no SLA)."""
    body: dict[str, Any] = {
        "id": "emea",
        "team": team,
        "members": [{"rep_id": str(r.id)} for r in reps],
        "rules": [{"country": ["DE"]}],
    }
    if first_touch_minutes is not None:
        body["sla"] = {
            "first_touch_minutes": first_touch_minutes,
            "max_reassignments": max_reassignments,
        }
    return body


async def staff(iso: Isolation, client: httpx.AsyncClient, reps: Sequence[Rep], **sla: Any) -> None:
    """Hire the reps, in this rotation order, into Germany's territory with the SLA given."""
    await hire(iso, client, reps)
    await put_ruleset(client, territory(reps, **sla))


async def first_owner(
    iso: Isolation, lead: Lead, reps: Sequence[Rep]
) -> tuple[dict[str, Any], Rep, Rep]:
    """Put a new lead on the CRM topic: its lead.assigned, its owner and the other rep."""
    await put_on_crm(iso, [crm("lead.created", lead)])
    facts = await routing_facts(iso, has(lead, ("lead.assigned", 1)))
    assigned = of_lead(facts, lead, "lead.assigned")[0].data
    owner = next(r for r in reps if str(r.id) == assigned["rep_id"])
    other = next(r for r in reps if r is not owner)
    return assigned, owner, other


async def put_ruleset(client: httpx.AsyncClient, *territories: dict[str, Any]) -> None:
    resp = await client.put(
        "/v1/routing/ruleset", json={"territories": list(territories)}, headers=AUTH
    )
    assert resp.status_code == 200, resp.text


def german_lead(source_id: str) -> Lead:
    return Lead(
        id=uuid.uuid4(),
        source="api",
        source_id=source_id,
        email=f"{source_id}@prospect.example",
        phone="+49 30 1234567",
        country="DE",
    )


def call(
    lead_id: UUID, rep_id: UUID, occurred_at: datetime, *, direction: str = "outbound"
) -> Activity:
    return Activity.model_validate(
        {
            "id": uuid.uuid4(),
            "source": "api",
            "source_id": f"call-{uuid.uuid4().hex[:8]}",
            "type": "call",
            "direction": direction,
            "rep_id": rep_id,
            "lead_id": lead_id,
            "occurred_at": occurred_at,
        }
    )


async def routing_facts(
    iso: Isolation, until: Callable[[list[Envelope]], bool], *, within: float = 60
) -> list[Envelope]:
    return await read_topic(
        iso.bootstrap, iso.topic("salesops.routing.v1"), until=until, within=within
    )


def of_lead(facts: Sequence[Envelope], lead: Lead, type_name: str | None = None) -> list[Envelope]:
    return [
        f for f in facts if f.data.get("lead_id") == str(lead.id) and type_name in (None, f.type)
    ]


def has(lead: Lead, *counts: tuple[str, int]) -> Callable[[list[Envelope]], bool]:
    """Read until the lead has at least this many facts of each type."""

    def enough(seen: list[Envelope]) -> bool:
        return all(len(of_lead(seen, lead, name)) >= n for name, n in counts)

    return enough


async def stored(iso: Isolation, query: str, *args: Any) -> dict[str, Any] | None:
    """One row of routing's database: SLA timers and touches have no REST view."""
    conn = await asyncpg.connect(database_dsn(iso.database_url, iso.database("routing")))
    try:
        row = await conn.fetchrow(query, *args)
    finally:
        await conn.close()
    return dict(row) if row else None


async def sla_timer(iso: Isolation, lead_id: UUID) -> dict[str, Any] | None:
    return await stored(iso, "SELECT * FROM sla_timers WHERE lead_id = $1", lead_id)
