"""Reading the KPIs: every answer comes from PostgreSQL, so every copy gives the same."""

from __future__ import annotations

from salesops_common.db import UnitOfWork
from salesops_metrics.adapters import repository
from salesops_metrics.domain.kpis import Snapshot


async def current_kpis(uow: UnitOfWork) -> Snapshot:
    async with uow() as session:
        return await repository.snapshot(session)
