"""A minimal service on the real plumbing: it records one row per applied event."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import func, select, text

from salesops_common.envelope import Envelope
from salesops_common.events import CRM_TOPIC
from salesops_common.inbox import Handler, HandlerContext
from salesops_common.runtime import ServiceRuntime
from salesops_common.settings import CommonSettings
from tests.support import Isolation

MIGRATIONS = Path(__file__).parent / "probe_migrations"


async def record_effect(ctx: HandlerContext, event: Envelope) -> None:
    await ctx.session.execute(
        text("INSERT INTO effects (event_id, subject) VALUES (:id, :subject)"),
        {"id": event.id, "subject": event.subject},
    )


async def explode_on_boom(ctx: HandlerContext, event: Envelope) -> None:
    if event.data.get("first_name") == "boom":
        raise ValueError("this lead update cannot be applied")
    await record_effect(ctx, event)


def probe_runtime(iso: Isolation, handlers: Mapping[str, Handler] | None = None) -> ServiceRuntime:
    runtime = ServiceRuntime(
        service="probe",
        settings=CommonSettings(**iso.settings_kwargs()),
        database=iso.database("probe"),
        migrations=MIGRATIONS,
    )
    runtime.add_consumer(
        name="crm",
        subscribe=[CRM_TOPIC],
        handlers=handlers or {"lead.created": record_effect, "lead.updated": explode_on_boom},
    )
    return runtime


async def effects(runtime: ServiceRuntime) -> dict[str, int]:
    """How many times each event id was applied."""
    async with runtime.uow() as session:
        rows = await session.execute(
            select(text("event_id"), func.count())
            .select_from(text("effects"))
            .group_by(text("event_id"))
        )
        return {str(r[0]): int(r[1]) for r in rows}
