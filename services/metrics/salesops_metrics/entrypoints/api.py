"""Metrics' REST API: ``GET /v1/kpis``.

The single-KPI answer already has the shape windows and grouping will fill:
``window`` bounds, ``group_by`` dimensions and one ``values`` row per group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from salesops_common.http import ApiError
from salesops_metrics.domain.kpis import KPIS, Snapshot

SnapshotLoader = Callable[[], Awaitable[Snapshot]]


class KpiSummary(BaseModel):
    kpi: str
    definition: str
    unit: str
    value: float | int | None = Field(description="null when there is no data (never 0)")
    numerator: int
    denominator: int | None
    n: int = Field(description="observations the value is computed from")


class KpiListing(BaseModel):
    kpis: list[KpiSummary]
    events_by_type: dict[str, int] = Field(description="events applied, by type")


class Window(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None


class GroupValue(BaseModel):
    group: dict[str, str]
    value: float | int | None
    numerator: int
    denominator: int | None
    n: int


class KpiReport(BaseModel):
    kpi: str
    definition: str
    unit: str
    window: Window = Field(description="null bounds: all time")
    group_by: list[str] | None = Field(description="null: one value for everything")
    values: list[GroupValue]


def build_router(
    *, load: SnapshotLoader, require_token: Callable[..., Awaitable[None]]
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require_token)])

    @router.get("/kpis", response_model=KpiListing | KpiReport, response_model_by_alias=True)
    async def get_kpis(
        kpi: Annotated[str | None, Query(description=f"one KPI: {', '.join(KPIS)}")] = None,
    ) -> KpiListing | KpiReport:
        """Every KPI with its definition and current value, and events applied by type; with
        ``kpi``, that KPI as a report (404 for an unknown name)."""
        if kpi is not None and kpi not in KPIS:
            raise ApiError(404, f"no KPI named {kpi!r}", details={"known": list(KPIS)})
        snap = await load()
        return _listing(snap) if kpi is None else _report(kpi, snap)

    return router


def _listing(snap: Snapshot) -> KpiListing:
    kpis = [
        KpiSummary(kpi=k.name, definition=k.definition, unit=k.unit, **snap.value(k.name).as_json())
        for k in KPIS.values()
    ]
    return KpiListing(kpis=kpis, events_by_type=snap.events_by_type)


def _report(name: str, snap: Snapshot) -> KpiReport:
    kpi = KPIS[name]
    return KpiReport(
        kpi=kpi.name,
        definition=kpi.definition,
        unit=kpi.unit,
        window=Window(),
        group_by=None,
        values=[GroupValue(group={}, **snap.value(name).as_json())],
    )
