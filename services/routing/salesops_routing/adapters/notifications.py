"""SQL of team notifications: the channels (one webhook per team) and the delivery queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common import writes
from salesops_common.db import first_row
from salesops_common.writes import Statement

_ENQUEUE = """
    INSERT INTO notifications (team, kind, payload)
    SELECT c.team, x.kind, x.payload::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(team, kind, payload, n)
    JOIN notification_channels c ON (c.team = x.team OR c.team = '*') AND x.kind = ANY(c.events)
    ORDER BY x.n, c.team
"""
# The lease: a claimed row is not due again until the batch had time to be sent, so another
# copy of the service skips it; a crash only delays it by the lease.
_CLAIM = text(
    """
    UPDATE notifications n
    SET next_attempt_at = now() + make_interval(secs => :lease)
    FROM (SELECT id FROM notifications
          WHERE state = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at, id LIMIT :limit
          FOR UPDATE SKIP LOCKED) due
    WHERE n.id = due.id
    RETURNING n.id, n.team, n.kind, n.payload, n.attempts,
              (SELECT c.url FROM notification_channels c WHERE c.team = n.team) AS url
    """
)
_RECORD = text(
    """
    UPDATE notifications
    SET state = CAST(:state AS text), attempts = attempts + 1,
        last_error = coalesce(CAST(:error AS text), last_error),
        next_attempt_at = now() + make_interval(secs => CAST(:delay AS double precision)),
        sent_at = CASE WHEN CAST(:state AS text) = 'sent' THEN now() END
    WHERE id = :id
    """
)
_DEFER = text(
    """
    UPDATE notifications SET next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = ANY(CAST(:ids AS bigint[])) AND state = 'pending'
    """
)
_NOTIFICATION_COLUMNS = (
    "id, team, kind, state, attempts, payload->>'text' AS text, last_error, created_at, "
    "next_attempt_at, sent_at"
)


@dataclass(frozen=True)
class Due:
    """A claimed notification and where it goes (None: its channel was removed)."""

    id: int
    team: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    url: str | None


async def enqueue(
    conn: asyncpg.Connection, messages: Sequence[tuple[str | None, str, dict[str, Any]]]
) -> None:
    """Queue (team, kind, payload) messages: a row for every channel that wants one, none
    when nobody listens (one statement for them all, on the decision path's connection)."""
    await writes.execute(conn, enqueue_writes(messages))


def enqueue_writes(messages: Sequence[tuple[str | None, str, dict[str, Any]]]) -> list[Statement]:
    """:func:`enqueue` as a write to send with others (:func:`writes.execute`)."""
    if not messages:
        return []
    return [
        (
            _ENQUEUE,
            [
                [team for team, _, _ in messages],
                [kind for _, kind, _ in messages],
                [orjson.dumps(payload).decode() for _, _, payload in messages],
            ],
        )
    ]


async def rep_name(session: AsyncSession, rep_id: UUID | None) -> str | None:
    if rep_id is None:
        return None
    row = await session.execute(text("SELECT name FROM reps WHERE id = :id"), {"id": rep_id})
    name: str | None = row.scalar()
    return name


async def claim_due(session: AsyncSession, *, limit: int, lease_seconds: float) -> list[Due]:
    rows = await session.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
    claimed = [Due(r.id, r.team, r.kind, _json(r.payload), r.attempts, r.url) for r in rows]
    return sorted(claimed, key=lambda d: d.id)


def _json(value: Any) -> dict[str, Any]:
    loaded = orjson.loads(value) if isinstance(value, str | bytes) else value
    assert isinstance(loaded, dict)
    return loaded


async def record_attempt(
    session: AsyncSession, notification_id: int, *, state: str, delay: float, error: str | None
) -> None:
    """One try made: ``state`` is sent, pending (retried after ``delay``) or failed."""
    await session.execute(
        _RECORD, {"id": notification_id, "state": state, "delay": delay, "error": error}
    )


async def defer(session: AsyncSession, ids: Sequence[int], *, delay: float) -> None:
    """Put off rows that were claimed but not tried (their receiver just failed)."""
    if ids:
        await session.execute(_DEFER, {"ids": list(ids), "delay": delay})


# -- channels and the REST views ------------------------------------------------------------


async def put_channel(
    session: AsyncSession, *, team: str, url: str, events: Sequence[str]
) -> dict[str, Any]:
    row = await session.execute(
        text(
            """
            INSERT INTO notification_channels (team, url, events)
            VALUES (:team, :url, CAST(:events AS text[]))
            ON CONFLICT (team) DO UPDATE
                SET url = EXCLUDED.url, events = EXCLUDED.events, updated_at = now()
            RETURNING team, url, events, updated_at
            """
        ),
        {"team": team, "url": url, "events": list(events)},
    )
    return dict(row.one()._mapping)


async def list_channels(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT team, url, events, updated_at FROM notification_channels ORDER BY team")
    )
    return [dict(r._mapping) for r in rows]


async def delete_channel(session: AsyncSession, team: str) -> bool:
    """Remove a team's channel; what was still waiting for it can never be sent: failed."""
    deleted = await session.execute(
        text("DELETE FROM notification_channels WHERE team = :team RETURNING team"),
        {"team": team},
    )
    if deleted.first() is None:
        return False
    await session.execute(
        text(
            "UPDATE notifications SET state = 'failed', last_error = 'channel removed' "
            "WHERE team = :team AND state = 'pending'"
        ),
        {"team": team},
    )
    return True


async def list_notifications(
    session: AsyncSession, *, state: str | None, team: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications "
            "WHERE (CAST(:state AS text) IS NULL OR state = :state) "
            "AND (CAST(:team AS text) IS NULL OR team = :team) "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {"state": state, "team": team, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


async def find_notification(session: AsyncSession, notification_id: int) -> dict[str, Any] | None:
    row = await session.execute(
        text(f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE id = :id"),
        {"id": notification_id},
    )
    return first_row(row)


async def retry_failed(session: AsyncSession, notification_id: int) -> dict[str, Any] | None:
    """A failed notification back in the queue with a fresh budget of attempts; None if it is
    unknown or not failed."""
    row = await session.execute(
        text(
            "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = now() "
            f"WHERE id = :id AND state = 'failed' RETURNING {_NOTIFICATION_COLUMNS}"
        ),
        {"id": notification_id},
    )
    return first_row(row)
