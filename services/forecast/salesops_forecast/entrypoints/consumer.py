"""Forecast's consumer handlers: one visible registry of the CRM and routing events it
applies."""

from __future__ import annotations

from datetime import UTC, datetime

from salesops_common.envelope import Envelope
from salesops_common.events import (
    Account,
    AccountTerritoryAssigned,
    Activity,
    Deal,
    Lead,
    LeadMerged,
    Rep,
    RulesetPublished,
)
from salesops_common.inbox import Handler, HandlerContext
from salesops_forecast.service_layer import pipeline

DEAL_EVENTS = (
    "deal.created",
    "deal.updated",
    "deal.stage_changed",
    "deal.won",
    "deal.lost",
    "deal.deleted",
)
REP_EVENTS = ("rep.created", "rep.updated")
ACCOUNT_EVENTS = ("account.created", "account.updated", "account.deleted")
LEAD_EVENTS = (
    "lead.created",
    "lead.updated",
    "lead.converted",
    "lead.disqualified",
    "lead.deleted",
)


def _aware(time: datetime) -> datetime:
    # Field versions compare event times; a producer's offset-less time is taken as UTC
    # rather than made poison by a naive/aware comparison.
    return time if time.tzinfo is not None else time.replace(tzinfo=UTC)


def _event_time(envelope: Envelope) -> datetime:
    return _aware(envelope.time)


async def on_deal_event(ctx: HandlerContext, envelope: Envelope) -> None:
    deal = envelope.parsed_as(Deal)
    await pipeline.apply_deal_event(
        ctx,
        event_type=envelope.type,
        deal=deal,
        at=_event_time(envelope),
        present=envelope.data.keys(),
    )


async def on_rep_event(ctx: HandlerContext, envelope: Envelope) -> None:
    rep = envelope.parsed_as(Rep)
    await pipeline.apply_rep_event(
        ctx.session, rep=rep, at=_event_time(envelope), present=envelope.data.keys()
    )


async def on_account_event(ctx: HandlerContext, envelope: Envelope) -> None:
    await pipeline.apply_account_event(
        ctx.session,
        event_type=envelope.type,
        account=envelope.parsed_as(Account),
        at=_event_time(envelope),
        present=envelope.data.keys(),
    )


async def on_lead_event(ctx: HandlerContext, envelope: Envelope) -> None:
    await pipeline.apply_lead_event(
        ctx,
        event_type=envelope.type,
        lead=envelope.parsed_as(Lead),
        at=_event_time(envelope),
        present=envelope.data.keys(),
    )


async def on_lead_merged(ctx: HandlerContext, envelope: Envelope) -> None:
    merged = envelope.parsed_as(LeadMerged)
    await pipeline.apply_lead_merged(ctx.session, merged=merged, at=_event_time(envelope))


async def on_activity(ctx: HandlerContext, envelope: Envelope) -> None:
    activity = envelope.parsed_as(Activity)
    occurred = _aware(activity.occurred_at or envelope.time)
    await pipeline.apply_activity(ctx.session, activity=activity, at=occurred)


async def on_territory_assigned(ctx: HandlerContext, envelope: Envelope) -> None:
    assigned = envelope.parsed_as(AccountTerritoryAssigned)
    await pipeline.apply_territory_assigned(
        ctx.session, assigned=assigned, at=_event_time(envelope)
    )


async def on_ruleset_published(ctx: HandlerContext, envelope: Envelope) -> None:
    published = envelope.parsed_as(RulesetPublished)
    await pipeline.apply_ruleset(ctx.session, published=published, at=_event_time(envelope))


HANDLERS: dict[str, Handler] = {
    **{name: on_deal_event for name in DEAL_EVENTS},
    **{name: on_rep_event for name in REP_EVENTS},
    **{name: on_account_event for name in ACCOUNT_EVENTS},
    **{name: on_lead_event for name in LEAD_EVENTS},
    "lead.merged": on_lead_merged,
    "activity.logged": on_activity,
}
# From salesops.routing.v1: where accounts and reps sit in the territory model.
ROUTING_HANDLERS: dict[str, Handler] = {
    "account.territory_assigned": on_territory_assigned,
    "ruleset.published": on_ruleset_published,
}
