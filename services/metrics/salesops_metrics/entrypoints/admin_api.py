"""Metrics' admin API: quotas, exchange rates (read with the API token, set with the admin
token), and the rebuild (admin token)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from salesops_common.db import UnitOfWork, driver_connection
from salesops_common.http import ApiError
from salesops_metrics.adapters import queries, repository
from salesops_metrics.domain.facts import QuotaFact
from salesops_metrics.domain.periods import BadWindow, parse_period
from salesops_metrics.service_layer.projections import rebuild

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuotaScope(_Strict):
    kind: Literal["company", "territory", "team", "rep"]
    id: str | None = Field(None, min_length=1, max_length=200)


class Quota(_Strict):
    period: str = Field(description="a fiscal month (2026-11) or quarter (2027-Q1)")
    scope: QuotaScope
    amount: Decimal = Field(ge=0, allow_inf_nan=False)
    currency: str | None = Field(None, description="default: the reporting currency")


class Quotas(_Strict):
    quotas: list[Quota] = Field(max_length=10_000)


class Rates(_Strict):
    rates: dict[str, Decimal] = Field(
        description="value of one unit of each currency in the reporting currency"
    )

    @field_validator("rates")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, rate in value.items():
            if not _CURRENCY.match(code):
                raise ValueError(f"{code!r} is not an ISO 4217 code (three capital letters)")
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"the rate of {code} must be a positive number")
        return value


def _quota_fact(index: int, quota: Quota, *, reporting: str, start_month: int) -> QuotaFact:
    try:
        parse_period(quota.period, start_month=start_month)
    except BadWindow as exc:
        raise ApiError(422, str(exc), details={"index": index, "field": "period"}) from None
    if (quota.scope.kind == "company") != (quota.scope.id is None):
        raise ApiError(
            422,
            "a company quota has no scope id; every other scope needs one",
            details={"index": index, "field": "scope.id"},
        )
    currency = (quota.currency or reporting).upper()
    if not _CURRENCY.match(currency):
        raise ApiError(422, f"{currency!r} is not an ISO 4217 code", details={"index": index})
    return QuotaFact(quota.period, quota.scope.kind, quota.scope.id, quota.amount, currency)


def _quota_json(q: QuotaFact) -> dict[str, Any]:
    return {
        "period": q.period,
        "scope": {"kind": q.scope_kind, "id": q.scope_id},
        "amount": str(q.amount),
        "currency": q.currency,
    }


def build_admin_router(
    *,
    uow: UnitOfWork,
    reporting_currency: str,
    fiscal_start_month: int,
    require_token: Callable[..., Awaitable[None]],
    require_admin: Callable[..., Awaitable[None]],
    rebuilt: Callable[[], None] = lambda: None,
) -> APIRouter:
    """Reads need the API token; writes the admin token. ``rebuilt`` runs after a rebuild."""
    router = APIRouter(prefix="/v1", tags=["admin"])
    admin = [Depends(require_admin)]
    reader = [Depends(require_token)]

    @router.put("/quotas", dependencies=admin)
    async def put_quotas(body: Quotas) -> dict[str, Any]:
        """Set quotas (each replaces the one of its period and scope); they are not events:
        a rebuild keeps them."""
        facts = [
            _quota_fact(i, q, reporting=reporting_currency, start_month=fiscal_start_month)
            for i, q in enumerate(body.quotas)
        ]
        async with uow() as session:
            await repository.save_quotas(await driver_connection(session), facts)
        return {"saved": len(facts)}

    @router.get("/quotas", dependencies=reader)
    async def get_quotas() -> dict[str, Any]:
        async with uow() as session:
            found = await queries.quotas(await driver_connection(session))
        return {"quotas": [_quota_json(q) for q in found]}

    @router.delete("/quotas", dependencies=admin)
    async def delete_quota(
        period: str,
        scope_kind: Annotated[Literal["company", "territory", "team", "rep"], Query()],
        scope_id: str | None = None,
    ) -> dict[str, Any]:
        async with uow() as session:
            conn = await driver_connection(session)
            found = await repository.delete_quota(
                conn, period=period, scope_kind=scope_kind, scope_id=scope_id
            )
        if not found:
            raise ApiError(404, "no such quota")
        return {"deleted": 1}

    @router.put("/exchange-rates", dependencies=admin)
    async def put_rates(body: Rates) -> dict[str, Any]:
        """Set rates: how much one unit of a currency is worth in the reporting currency.
        Every amount KPI uses the rates as they are when it is read."""
        rates = {c: r for c, r in body.rates.items() if c != reporting_currency}
        async with uow() as session:
            await repository.save_rates(await driver_connection(session), rates)
        return {"saved": len(rates)}

    @router.get("/exchange-rates", dependencies=reader)
    async def get_rates() -> dict[str, Any]:
        async with uow() as session:
            found = await queries.rates(await driver_connection(session), reporting_currency)
        return {
            "currency": found.reporting,
            "rates": {c: str(r) for c, r in sorted(found.rates.items())},
        }

    @router.delete("/exchange-rates/{currency}", dependencies=admin)
    async def delete_rate(currency: str) -> dict[str, Any]:
        async with uow() as session:
            found = await repository.delete_rate(await driver_connection(session), currency)
        if not found:
            raise ApiError(404, f"no rate for {currency!r}")
        return {"deleted": 1}

    @router.post("/rebuild", dependencies=admin)
    async def post_rebuild() -> dict[str, Any]:
        """Recompute every projection from the event log, in one transaction (consumers
        wait meanwhile); quotas, rates and dead letters are kept."""
        done = await rebuild(uow)
        rebuilt()
        return {"events": done.events, "seconds": round(done.seconds, 3)}

    return router
