"""Metrics' REST API: ``GET /v1/kpis``, the catalogue or one KPI by window and group."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from salesops_common.http import ApiError
from salesops_metrics.domain.dimensions import DIMENSIONS
from salesops_metrics.domain.kpis import KPIS, GroupRow, KpiValue
from salesops_metrics.domain.periods import WINDOWS, BadWindow, Window, day_start
from salesops_metrics.service_layer.kpis import Listing


@dataclass(frozen=True)
class KpiQuery:
    kpi: str
    window: str | None
    start: datetime | None
    end: datetime | None
    group_by: str | None


ReportLoader = Callable[[KpiQuery], Awaitable[tuple[Window, list[GroupRow]]]]
ListingLoader = Callable[[], Awaitable[Listing]]
Number = float | int | None


class KpiSummary(BaseModel):
    kpi: str
    definition: str
    unit: str
    group_by: list[str] = Field(description="what the KPI can be grouped by, besides none")
    value: Number = Field(description="over all time, ungrouped; null when there is no data")
    numerator: Number
    denominator: Number
    n: int = Field(description="observations the value is computed from")


class KpiListing(BaseModel):
    kpis: list[KpiSummary]
    events_by_type: dict[str, int] = Field(description="events applied, by type")


class WindowBounds(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None


class GroupValue(BaseModel):
    group: dict[str, str | None]
    value: Number = Field(description="null when there is no data, or a percentile unbounded")
    numerator: Number
    denominator: Number
    n: int


class KpiReport(BaseModel):
    kpi: str
    window: WindowBounds = Field(description="half-open [from, to); null bounds: unbounded")
    group_by: str | None = Field(description="null: one value for everything")
    values: list[GroupValue]


def finite(value: float | int | None) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def value_json(value: KpiValue) -> dict[str, Any]:
    return {
        "value": finite(value.value),
        "numerator": finite(value.numerator),
        "denominator": finite(value.denominator),
        "n": value.n,
    }


def parse_bound(name: str, text: str | None) -> datetime | None:
    """RFC 3339 with an offset, or a date (its UTC midnight). An unescaped ``+`` in a query
    string arrives as a space: read it back as the offset's sign."""
    if text is None:
        return None
    clock, space, offset = text.rpartition(" ")
    if space and "T" in clock:
        text = f"{clock}+{offset}"
    try:
        if len(text) == 10:
            return day_start(date.fromisoformat(text))
        return datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, f"{name} is not an RFC 3339 date-time or a date: {text!r}") from None


def check_group_by(kpi: str, group_by: str | None) -> str | None:
    if group_by in (None, "", "none"):
        return None
    if group_by not in DIMENSIONS:
        raise ApiError(
            422,
            f"unknown group_by {group_by!r}",
            details={"group_by": ["none", *DIMENSIONS]},
        )
    definition = KPIS[kpi]
    if not definition.supports(group_by):
        supported = ", ".join(["none", *definition.group_by])
        raise ApiError(
            422,
            f"{kpi} cannot be grouped by {group_by}; it can be grouped by {supported}",
            details={"kpi": kpi, "group_by": ["none", *definition.group_by]},
        )
    return group_by


def build_router(
    *,
    report: ReportLoader,
    listing: ListingLoader,
    require_token: Callable[..., Awaitable[None]],
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require_token)])

    @router.get("/kpis", response_model=KpiListing | KpiReport, response_model_by_alias=True)
    async def get_kpis(
        kpi: Annotated[str | None, Query(description=f"one KPI: {', '.join(KPIS)}")] = None,
        window: Annotated[
            str | None, Query(description=f"{', '.join(WINDOWS)}; default all")
        ] = None,
        from_: Annotated[
            str | None, Query(alias="from", description="RFC 3339 or a date, instead of window")
        ] = None,
        to: Annotated[str | None, Query(description="RFC 3339 or a date (exclusive)")] = None,
        group_by: Annotated[str | None, Query(description=f"none, {', '.join(DIMENSIONS)}")] = None,
    ) -> KpiListing | KpiReport:
        """Without ``kpi``: every KPI with its definition, unit, groupings and all-time value,
        and events applied by type. With ``kpi``: its values over the window, one per group.
        404 for an unknown KPI; 422 for a bad window or a grouping the KPI does not support."""
        if kpi is None:
            if any(p is not None for p in (window, from_, to, group_by)):
                raise ApiError(422, "window, from, to and group_by need a kpi")
            return _listing(await listing())
        if kpi not in KPIS:
            raise ApiError(404, f"no KPI named {kpi!r}", details={"known": list(KPIS)})
        by = check_group_by(kpi, group_by)
        start, end = parse_bound("from", from_), parse_bound("to", to)
        try:
            bounds, rows = await report(KpiQuery(kpi, window, start, end, by))
        except BadWindow as exc:
            raise ApiError(422, str(exc), details={"window": list(WINDOWS)}) from None
        return KpiReport(
            kpi=kpi,
            window=WindowBounds(from_=bounds.start, to=bounds.end),
            group_by=by,
            values=[GroupValue(group=r.group, **value_json(r.value)) for r in rows],
        )

    return router


def _listing(found: Listing) -> KpiListing:
    kpis = [
        KpiSummary(
            kpi=k.name,
            definition=k.definition,
            unit=k.unit,
            group_by=list(k.group_by),
            **value_json(value),
        )
        for k, value in found.kpis
    ]
    return KpiListing(kpis=kpis, events_by_type=found.events_by_type)
