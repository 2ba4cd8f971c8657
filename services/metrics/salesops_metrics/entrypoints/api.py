"""Metrics' REST API: ``GET /v1/kpis``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from salesops_common.db import UnitOfWork
from salesops_common.http import ApiError
from salesops_metrics.adapters import repository
from salesops_metrics.domain.kpis import KPIS, Snapshot


def build_router(uow: UnitOfWork, require_token: Callable[..., Awaitable[None]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require_token)])

    @router.get("/kpis")
    async def get_kpis(
        kpi: Annotated[str | None, Query(description="one KPI by name")] = None,
    ) -> dict[str, Any]:
        """Every KPI with its definition and current value over all time; with ``kpi``,
        that one KPI as ``{"kpi", "definition", "window", "group_by", "values"}``."""
        if kpi is not None and kpi not in KPIS:
            raise ApiError(404, f"no KPI named {kpi!r}", details={"known": sorted(KPIS)})
        async with uow() as session:
            snap = await repository.snapshot(session)
        if kpi is None:
            return {
                "kpis": [_summary(name, snap) for name in KPIS],
                "events_by_type": snap.events_by_type,
            }
        definition = KPIS[kpi]
        return {
            "kpi": kpi,
            "definition": definition.definition,
            "unit": definition.unit,
            "window": {"from": None, "to": None},
            "group_by": None,
            "values": [{"group": {}, **snap.value(kpi).as_json()}],
        }

    return router


def _summary(name: str, snap: Snapshot) -> dict[str, Any]:
    definition = KPIS[name]
    return {
        "kpi": name,
        "definition": definition.definition,
        "unit": definition.unit,
        **snap.value(name).as_json(),
    }
