"""Forecast's consumer handlers: one visible registry of the CRM events it applies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from salesops_common.envelope import Envelope
from salesops_common.events import Deal, EventData, Rep
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

Data = TypeVar("Data", bound=EventData)


def _data(envelope: Envelope, model: type[Data]) -> Data:
    # parsed() upgrades old schema versions; a payload of another shape is poison (DLQ).
    data = envelope.parsed()
    if not isinstance(data, model):
        raise TypeError(f"{envelope.type} carries {type(data).__name__}, not {model.__name__}")
    return data


def _event_time(envelope: Envelope) -> datetime:
    # Field versions compare event times; a producer's offset-less ce_time is taken as UTC
    # rather than made poison by a naive/aware comparison.
    time = envelope.time
    return time if time.tzinfo is not None else time.replace(tzinfo=UTC)


async def on_deal_event(ctx: HandlerContext, envelope: Envelope) -> None:
    deal = _data(envelope, Deal)
    await pipeline.apply_deal_event(
        ctx, event_type=envelope.type, deal=deal, at=_event_time(envelope)
    )


async def on_rep_event(ctx: HandlerContext, envelope: Envelope) -> None:
    rep = _data(envelope, Rep)
    await pipeline.apply_rep_event(ctx.session, rep=rep, at=_event_time(envelope))


HANDLERS: dict[str, Handler] = {
    **{name: on_deal_event for name in DEAL_EVENTS},
    **{name: on_rep_event for name in REP_EVENTS},
}
