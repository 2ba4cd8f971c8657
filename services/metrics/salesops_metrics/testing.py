"""Canonical events as ingest, routing and forecast publish them, built from the few fields a
test or a benchmark cares about. The tests (tests/metrics) and the benchmarks
(bench/metrics_org.py) build their histories with these; the service itself never imports
this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from salesops_common.envelope import Envelope
from salesops_common.events import (
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

INGEST = "/ingest/api/default"
ROUTING = "/routing"
FORECAST = "/forecast"


def _crm(type_name: str, data: Any, at: datetime) -> Envelope:
    return Envelope.of(type_name, data, source=INGEST, time=at)


def rep(
    at: datetime,
    *,
    rep_id: UUID | None = None,
    verb: str = "created",
    source_id: str | None = None,
    **fields: Any,
) -> Envelope:
    rep_id = rep_id or uuid.uuid4()
    data = Rep(id=rep_id, source="api", source_id=source_id or uuid.uuid4().hex, **fields)
    return _crm(f"rep.{verb}", data, at)


def account(
    at: datetime,
    *,
    account_id: UUID,
    verb: str = "created",
    source_id: str | None = None,
    **fields: Any,
) -> Envelope:
    data = Account(id=account_id, source="api", source_id=source_id or str(account_id), **fields)
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
    return _crm("lead.merged", data, at)


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
        type=kind,
        direction=direction,
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
    """``rep_id`` None: the fallback queue; ``again``: a lead.reassigned."""
    fact = LeadAssigned(
        lead_id=lead_id,
        rep_id=rep_id,
        territory_id=territory,
        strategy="round_robin",
        reason="generated",
        assigned_at=at,
    )
    kind = "lead.reassigned" if again else "lead.assigned"
    return Envelope.of(kind, fact, source=ROUTING, time=at)


def breached(at: datetime, *, lead_id: UUID, rep_id: UUID, territory: str | None) -> Envelope:
    fact = LeadSlaBreached(
        lead_id=lead_id, rep_id=rep_id, territory_id=territory, due_at=at, breached_at=at
    )
    return Envelope.of("lead.sla_breached", fact, source=ROUTING, time=at)


def territory_of(at: datetime, *, account_id: UUID, territory: str | None) -> Envelope:
    fact = AccountTerritoryAssigned(
        account_id=account_id, territory_id=territory, ruleset_version=1
    )
    return Envelope.of("account.territory_assigned", fact, source=ROUTING, time=at)


def ruleset(at: datetime, version: int, territories: list[dict[str, Any]]) -> Envelope:
    fact = RulesetPublished(ruleset_version=version, ruleset={"territories": territories})
    return Envelope.of("ruleset.published", fact, source=ROUTING, time=at)


def forecast(
    as_of: datetime, *, period: str, point: str, kind: str = "company", scope_id: str | None = None
) -> Envelope:
    """A forecast.published whose point is also each bound of its intervals."""
    amount = Decimal(point)
    fact = ForecastPublished(
        forecast_id=uuid.uuid4(),
        as_of=as_of,
        period=period,
        scope=ForecastScope(kind=kind, id=scope_id),
        currency="USD",
        point=amount,
        lo80=amount,
        hi80=amount,
        lo95=amount,
        hi95=amount,
        categories={},
        methods={"generated": 1.0},
    )
    return Envelope.of("forecast.published", fact, source=FORECAST, time=as_of)


def hours(
    start: str = "09:00", end: str = "17:00", days: Sequence[int] = (1, 2, 3, 4, 5)
) -> WorkingHours:
    return WorkingHours(start=start, end=end, days=list(days))
