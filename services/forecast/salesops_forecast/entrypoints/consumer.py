"""Forecast's consumer handlers: one visible registry of the CRM events it applies."""

from __future__ import annotations

from datetime import UTC, datetime

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, Rep
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


def _event_time(envelope: Envelope) -> datetime:
    # Field versions compare event times; a producer's offset-less ce_time is taken as UTC
    # rather than made poison by a naive/aware comparison.
    time = envelope.time
    return time if time.tzinfo is not None else time.replace(tzinfo=UTC)


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


HANDLERS: dict[str, Handler] = {
    **{name: on_deal_event for name in DEAL_EVENTS},
    **{name: on_rep_event for name in REP_EVENTS},
}
