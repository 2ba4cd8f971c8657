"""CRM events as ingest publishes them, and what routing shows of them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import httpx

from salesops_common.envelope import Envelope
from salesops_common.events import EventData, Lead, LeadMerged, Rep
from tests.support import AUTH, Isolation, eventually, publish, read_topic

INGEST = "/ingest/api/default"


def crm(type_name: str, data: EventData) -> Envelope:
    return Envelope.of(type_name, data, source=INGEST)


def new_rep(source_id: str, **fields: Any) -> Rep:
    fields.setdefault("name", f"Rep {source_id}")
    fields.setdefault("active", True)
    return Rep(id=uuid.uuid4(), source="api", source_id=source_id, **fields)


def rep_change(rep: Rep, **changed: Any) -> Rep:
    """A rep.updated as ingest sends it: identity plus only what changed."""
    return Rep(id=rep.id, source=rep.source, source_id=rep.source_id, **changed)


def new_lead(source_id: str) -> Lead:
    return Lead(id=uuid.uuid4(), source="api", source_id=source_id, email=f"{source_id}@x.example")


def merged(lead: Lead, *, into: Lead) -> LeadMerged:
    return LeadMerged(
        id=lead.id,
        source="api",
        source_id=lead.source_id,
        merged_into_id=into.id,
        rule="email",
        score=1.0,
    )


async def put_on_crm(iso: Isolation, events: Sequence[Envelope]) -> None:
    await publish(iso.bootstrap, iso.topic("salesops.crm.v1"), list(events))


async def roster(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await client.get("/v1/reps", headers=AUTH)
    assert resp.status_code == 200, resp.text
    reps: list[dict[str, Any]] = resp.json()["reps"]
    return reps


async def hire(iso: Isolation, client: httpx.AsyncClient, reps: Sequence[Rep]) -> None:
    """Put reps on the CRM topic one by one, so their rotation order is the given order."""
    for count, rep in enumerate(reps, start=1):
        await put_on_crm(iso, [crm("rep.created", rep)])

        async def known(count: int = count) -> bool:
            return len(await roster(client)) == count

        await eventually(known, within=60)


async def assignment(client: httpx.AsyncClient, lead_id: UUID) -> dict[str, Any] | None:
    resp = await client.get(f"/v1/assignments/{lead_id}", headers=AUTH)
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def assignments(client: httpx.AsyncClient, leads: Iterable[Lead]) -> list[dict[str, Any]]:
    """Every lead's assignment, once all of them are assigned."""

    async def all_assigned() -> list[dict[str, Any]] | None:
        found = [await assignment(client, lead.id) for lead in leads]
        return None if None in found else [f for f in found if f]

    result: list[dict[str, Any]] = await eventually(all_assigned, within=60, interval=0.3)
    return result


async def assigned_facts(iso: Isolation, lead_ids: Iterable[UUID]) -> list[Envelope]:
    """lead.assigned events on the routing topic, read until every lead has one."""
    wanted = {str(i) for i in lead_ids}
    return await read_topic(
        iso.bootstrap,
        iso.topic("salesops.routing.v1"),
        until=lambda seen: wanted <= {e.data["lead_id"] for e in seen},
        within=60,
    )


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample from /metrics (0 if the series does not exist yet)."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")) == labels:
            return float(match.group(2))
    return 0.0


async def applied(client: httpx.AsyncClient, count: int) -> None:
    """Wait until routing has applied ``count`` CRM events (events it ignores not counted)."""

    async def done() -> bool:
        seen = await metric(
            client,
            "salesops_routing_consumer_events_total",
            topic="salesops.crm.v1",
            outcome="applied",
        )
        return seen >= count

    await eventually(done, within=60)
