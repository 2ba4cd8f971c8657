"""The fallback queue as an operator reads it: leads no rep could take when they were routed,
oldest first, with the reason routing gave."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Queued: routed, open, and no rep (assignments.rep_id is null).
_COUNT = text("SELECT count(*) FROM assignments WHERE rep_id IS NULL AND status = 'open'")
_OLDEST = text(
    "SELECT lead_id, territory_id, reason, assigned_at AS queued_at FROM assignments "
    "WHERE rep_id IS NULL AND status = 'open' ORDER BY assigned_at, lead_id LIMIT :limit"
)


async def queued_leads(session: AsyncSession, *, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """How many leads wait in the queue, and the ``limit`` oldest of them."""
    count = (await session.execute(_COUNT)).scalar_one()
    rows = await session.execute(_OLDEST, {"limit": limit})
    return int(count), [dict(r._mapping) for r in rows]
