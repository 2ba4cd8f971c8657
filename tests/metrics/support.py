"""Canonical events as ingest, routing and forecast publish them, and reading KPIs back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx

from salesops_common.envelope import Envelope
from salesops_common.events import (
    CRM_TOPIC,
    FORECAST_TOPIC,
    ROUTING_TOPIC,
    Account,
    AccountTerritoryAssigned,
    Activity,
    Deal,
    ForecastPublished,
    ForecastScope,
    Lead,
    LeadAssigned,
    LeadMerged,
    LeadSlaBreached,
    Rep,
    RulesetPublished,
    WorkingHours,
)
from salesops_metrics.config import MetricsSettings
from tests.support import AUTH, TOKEN, Isolation, eventually, publish

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ADMIN_TOKEN = "admin-" + TOKEN
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = "/ingest/api/default"


def fixed_clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def metrics_settings(iso: Isolation, **overrides: Any) -> MetricsSettings:
    overrides.setdefault("exposition_window", "all")
    overrides.setdefault("admin_token", ADMIN_TOKEN)
    # A scrape shows everything committed before it: tests read /metrics right after REST.
    overrides.setdefault("scrape_staleness_ms", 0)
    return MetricsSettings(database=iso.database("metrics"), **iso.settings_kwargs(), **overrides)


def _crm(type_name: str, data: Any, at: datetime) -> Envelope:
    return Envelope.of(type_name, data, source=INGEST, time=at)


def rep(
    at: datetime,
    *,
    rep_id: UUID | None = None,
    verb: str = "created",
    **fields: Any,
) -> Envelope:
    data = Rep(id=rep_id or uuid.uuid4(), source="api", source_id=uuid.uuid4().hex, **fields)
    return _crm(f"rep.{verb}", data, at)


def account(at: datetime, *, account_id: UUID, verb: str = "created", **fields: Any) -> Envelope:
    data = Account(id=account_id, source="api", source_id=str(account_id), **fields)
    return _crm(f"account.{verb}", data, at)


def deal(at: datetime, *, deal_id: UUID, verb: str = "created", **fields: Any) -> Envelope:
    if "amount" in fields and fields["amount"] is not None:
        fields["amount"] = Decimal(str(fields["amount"]))
    data = Deal(id=deal_id, source="api", source_id=str(deal_id), **fields)
    return _crm(f"deal.{verb}", data, at)


def lead(at: datetime, *, lead_id: UUID, verb: str = "created", **fields: Any) -> Envelope:
    data = Lead(id=lead_id, source="api", source_id=str(lead_id), **fields)
    return _crm(f"lead.{verb}", data, at)


def merged(at: datetime, *, lead_id: UUID, into: UUID, rule: str = "email") -> Envelope:
    data = LeadMerged(
        id=lead_id, source="api", source_id=str(lead_id), merged_into_id=into, rule=rule, score=1
    )
    return Envelope.of("lead.merged", data, source=INGEST, time=at)


def activity(
    at: datetime,
    *,
    rep_id: UUID,
    lead_id: UUID | None = None,
    tool: str | None = None,
    direction: str = "outbound",
    kind: str = "call",
) -> Envelope:
    data = Activity(
        id=uuid.uuid4(),
        source="api",
        source_id=uuid.uuid4().hex,
        type=kind,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        tool=tool,
        rep_id=rep_id,
        lead_id=lead_id,
        occurred_at=at,
    )
    return _crm("activity.logged", data, at)


def assigned(
    at: datetime,
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    territory: str | None = None,
    again: bool = False,
) -> Envelope:
    fact = LeadAssigned(
        lead_id=lead_id,
        rep_id=rep_id,
        territory_id=territory,
        strategy="round_robin",
        reason="test",
        assigned_at=at,
    )
    kind = "lead.reassigned" if again else "lead.assigned"
    return Envelope.of(kind, fact, source="/routing", time=at)


def breached(at: datetime, *, lead_id: UUID, rep_id: UUID, territory: str | None) -> Envelope:
    fact = LeadSlaBreached(
        lead_id=lead_id, rep_id=rep_id, territory_id=territory, due_at=at, breached_at=at
    )
    return Envelope.of("lead.sla_breached", fact, source="/routing", time=at)


def territory_of(at: datetime, *, account_id: UUID, territory: str | None) -> Envelope:
    fact = AccountTerritoryAssigned(
        account_id=account_id, territory_id=territory, ruleset_version=1
    )
    return Envelope.of("account.territory_assigned", fact, source="/routing", time=at)


def ruleset(at: datetime, version: int, territories: list[dict[str, Any]]) -> Envelope:
    fact = RulesetPublished(ruleset_version=version, ruleset={"territories": territories})
    return Envelope.of("ruleset.published", fact, source="/routing", time=at)


def forecast(
    as_of: datetime, *, period: str, point: str, kind: str = "company", scope_id: str | None = None
) -> Envelope:
    amount = Decimal(point)
    fact = ForecastPublished(
        forecast_id=uuid.uuid4(),
        as_of=as_of,
        period=period,
        scope=ForecastScope(kind=kind, id=scope_id),  # type: ignore[arg-type]
        currency="USD",
        point=amount,
        lo80=amount,
        hi80=amount,
        lo95=amount,
        hi95=amount,
        categories={},
        methods={"test": 1.0},
    )
    return Envelope.of("forecast.published", fact, source="/forecast", time=as_of)


def hours(
    start: str = "09:00", end: str = "17:00", days: Sequence[int] = (1, 2, 3, 4, 5)
) -> WorkingHours:
    return WorkingHours(start=start, end=end, days=list(days))


TOPIC_OF = {"crm": CRM_TOPIC, "routing": ROUTING_TOPIC, "forecast": FORECAST_TOPIC}


async def publish_all(iso: Isolation, events: Iterable[Envelope]) -> None:
    """Each event to its own topic, in the given order per topic."""
    by_topic: dict[str, list[Envelope]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event)
    for topic, batch in by_topic.items():
        await publish(iso.bootstrap, iso.topic(topic), batch)


async def applied_total(client: httpx.AsyncClient) -> int:
    """How many events metrics has applied (duplicates are not applied twice)."""
    resp = await client.get("/v1/kpis", headers=AUTH)
    assert resp.status_code == 200, resp.text
    return sum(resp.json()["events_by_type"].values())


async def applied(client: httpx.AsyncClient, count: int, *, within: float = 60) -> None:
    """Wait until metrics has applied ``count`` events."""

    async def probe() -> bool:
        return await applied_total(client) >= count

    await eventually(probe, within=within, interval=0.2)


async def kpi(
    client: httpx.AsyncClient,
    name: str,
    *,
    group_by: str | None = None,
    window: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    params: dict[str, str] = {"kpi": name}
    if group_by:
        params["group_by"] = group_by
    if window:
        params["window"] = window
    if start:
        params["from"] = start.isoformat()
    if end:
        params["to"] = end.isoformat()
    resp = await client.get("/v1/kpis", params=params, headers=AUTH)
    assert resp.status_code == 200, resp.text
    values: list[dict[str, Any]] = resp.json()["values"]
    return values


def one(values: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(values) == 1, values
    return values[0]


def by_group(values: list[dict[str, Any]], key: str) -> dict[str | None, dict[str, Any]]:
    return {v["group"][key]: v for v in values}


def days(n: float) -> timedelta:
    return timedelta(days=n)
