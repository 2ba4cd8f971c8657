"""REST for team notifications: each team's webhook channel, and the delivery log.

A channel's URL is a secret (whoever has it can post to the channel): it is accepted but never
shown again, only its scheme and host.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from salesops_common.http import ApiError
from salesops_routing.adapters import notifications
from salesops_routing.domain.notifications import TEAM_PATTERN, redact_url
from salesops_routing.service_layer.context import RoutingContext

NotifyKind = Literal["lead.assigned", "lead.reassigned", "lead.sla_breached"]
State = Literal["pending", "sent", "failed"]
Team = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=TEAM_PATTERN,
        description="The team of the territories it hears about; `*` hears about all.",
    ),
]
NotificationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _all_kinds() -> list[NotifyKind]:
    return ["lead.assigned", "lead.reassigned", "lead.sla_breached"]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="The incoming-webhook URL (http or https).")
    events: list[NotifyKind] = Field(default_factory=_all_kinds, min_length=1, max_length=3)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        if any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[NotifyKind]) -> list[NotifyKind]:
        return list(dict.fromkeys(value))


class ChannelView(BaseModel):
    team: str
    url: str = Field(description="Scheme and host only: the full URL is a secret.")
    events: list[str]
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> ChannelView:
        return cls.model_validate({**row, "url": redact_url(row["url"])})


class Channels(BaseModel):
    channels: list[ChannelView]


class NotificationView(BaseModel):
    id: int
    team: str
    kind: str
    state: State
    attempts: int
    text: str | None = Field(description="The message as the channel shows it.")
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class Notifications(BaseModel):
    notifications: list[NotificationView]


def build_notifications_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1/routing/notifications",
        tags=["notifications"],
        dependencies=[Depends(ctx.require_token)],
    )

    @router.put("/channels/{team}")
    async def put_channel(team: Team, body: ChannelIn) -> ChannelView:
        """Set the team's webhook and the events it hears about (all three by default)."""
        async with ctx.uow() as session:
            row = await notifications.put_channel(
                session, team=team, url=body.url, events=body.events
            )
        return ChannelView.of(row)

    @router.get("/channels")
    async def list_channels() -> Channels:
        async with ctx.uow() as session:
            rows = await notifications.list_channels(session)
        return Channels(channels=[ChannelView.of(r) for r in rows])

    @router.delete("/channels/{team}", status_code=204)
    async def delete_channel(team: Team) -> Response:
        """Remove the team's webhook; what was still waiting for it is marked failed."""
        async with ctx.uow() as session:
            deleted = await notifications.delete_channel(session, team)
        if not deleted:
            raise ApiError(404, "no channel for this team", details={"team": team})
        return Response(status_code=204)

    @router.get("")
    async def list_notifications(
        state: State | None = None,
        team: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Notifications:
        """Recent deliveries, newest first."""
        async with ctx.uow() as session:
            rows = await notifications.list_notifications(
                session, state=state, team=team, limit=limit
            )
        return Notifications(notifications=[NotificationView.model_validate(r) for r in rows])

    @router.post("/{notification_id}/retry")
    async def retry(notification_id: NotificationId) -> NotificationView:
        """Send a failed notification again, with a fresh budget of attempts."""
        async with ctx.uow() as session:
            row = await notifications.retry_failed(session, notification_id)
            found = row or await notifications.find_notification(session, notification_id)
        if found is None:
            raise ApiError(404, "no such notification", details={"id": notification_id})
        if row is None:
            raise ApiError(
                409, f"only a failed notification can be retried; this one is {found['state']}"
            )
        return NotificationView.model_validate(row)

    return router
