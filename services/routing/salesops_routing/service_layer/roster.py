"""Keeping the rep roster current from rep events."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.events import Rep
from salesops_routing.adapters import repository
from salesops_routing.domain.roster import stated_attributes


async def record_rep(session: AsyncSession, *, rep: Rep, present: Collection[str]) -> None:
    await repository.save_rep(session, rep.id, stated_attributes(rep, present=present))
