"""Team notifications: assignments and missed SLAs posted to each team's Slack-compatible
incoming webhook.

Enqueuing is part of the routing transaction (one insert, nothing when no channel listens);
delivery is a separate worker, so a slow or broken receiver never holds routing up. Rows are
leased before the POST and the result is recorded after it: delivery is at least once (a crash
between the two sends again). A webhook URL is a secret: it is never logged, nor stored in an
error text.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import driver_connection
from salesops_common.inbox import is_transient
from salesops_common.writes import Statement
from salesops_routing.adapters import notifications
from salesops_routing.domain.assignment import Assignment
from salesops_routing.domain.notifications import (
    LEAD_ASSIGNED,
    LEAD_REASSIGNED,
    LEAD_SLA_BREACHED,
    assignment_message,
    breach_message,
    retry_after_seconds,
    retry_delay,
)
from salesops_routing.service_layer.context import RoutingContext

log = logging.getLogger(__name__)

RESULTS = ("sent", "retried", "failed")
# The receiver says the webhook itself is wrong (bad payload, revoked, deleted, archived):
# retrying cannot help, so these fail at once and wait for a manual retry.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})
RETRY_AFTER_STATUSES = frozenset({429, 503})
BATCH = 50


@dataclass(frozen=True)
class NotifyMetrics:
    deliveries: Counter


_metrics: weakref.WeakKeyDictionary[CollectorRegistry, NotifyMetrics] = weakref.WeakKeyDictionary()


def notify_metrics(registry: CollectorRegistry) -> NotifyMetrics:
    """The delivery counter of an app's registry, created once per registry."""
    found = _metrics.get(registry)
    if found is None:
        deliveries = Counter(
            "salesops_routing_notifications",
            "Notification delivery attempts by result (retried: will be tried again)",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            deliveries.labels(result)
        found = _metrics[registry] = NotifyMetrics(deliveries)
    return found


# -- enqueuing (inside the routing transaction) ---------------------------------------------


def assignment_writes(assignments: Sequence[Assignment]) -> list[Statement]:
    """The teams' messages about the assignments, for :func:`writes.execute`."""
    kinds = {"assigned": LEAD_ASSIGNED, "reassigned": LEAD_REASSIGNED}
    return notifications.enqueue_writes(
        [(a.team, kinds[a.kind], assignment_message(a)) for a in assignments]
    )


async def enqueue_breach(
    session: AsyncSession,
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    territory_id: str | None,
    team: str | None,
    due_at: datetime,
    breached_at: datetime,
) -> None:
    payload = breach_message(
        lead_id=lead_id,
        rep_id=rep_id,
        rep_name=await notifications.rep_name(session, rep_id),
        territory_id=territory_id,
        due_at=due_at,
        breached_at=breached_at,
    )
    conn = await driver_connection(session)
    await notifications.enqueue(conn, [(team, LEAD_SLA_BREACHED, payload)])


# -- delivery (the worker) ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one POST came to."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False


async def deliver_due(
    routing: RoutingContext, client: httpx.AsyncClient, *, limit: int = 50
) -> int:
    """Send what is due; returns how many were claimed. Teams are served side by side, each
    team's messages in order; a team whose receiver fails gets nothing more this pass."""
    timeout = routing.settings.notify_timeout_seconds
    async with routing.uow() as session:
        due = await notifications.claim_due(
            session, limit=limit, lease_seconds=float(timeout * limit + 30)
        )
    by_team: dict[str, list[notifications.Due]] = defaultdict(list)
    for item in due:
        by_team[item.team].append(item)
    await asyncio.gather(*(_deliver_team(routing, client, items) for items in by_team.values()))
    return len(due)


async def _deliver_team(
    routing: RoutingContext, client: httpx.AsyncClient, items: Sequence[notifications.Due]
) -> None:
    for index, item in enumerate(items):
        outcome = await _send(client, item, seconds=routing.settings.notify_timeout_seconds)
        delay = await _record(routing, item, outcome)
        if not outcome.ok:
            # The rest wait as long as this one: a receiver that is down is not hammered.
            async with routing.uow() as session:
                await notifications.defer(session, [i.id for i in items[index + 1 :]], delay=delay)
            return


async def _send(client: httpx.AsyncClient, item: notifications.Due, *, seconds: float) -> Outcome:
    if item.url is None:
        return Outcome(ok=False, error="channel removed", permanent=True)
    try:
        return await _post(client, item.url, item.payload, seconds=seconds)
    except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError) as exc:
        return Outcome(ok=False, error=_scrub(f"{type(exc).__name__}: {exc}", item.url))


async def _post(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], *, seconds: float
) -> Outcome:
    # A whole-request deadline (httpx's timeouts are per read) and no more than the start of
    # the body: a receiver cannot keep the worker busy or fill its memory.
    async with (
        asyncio.timeout(seconds),
        client.stream("POST", url, json=payload, timeout=seconds) as resp,
    ):
        if resp.is_success:
            return Outcome(ok=True)
        head = b""
        async for chunk in resp.aiter_bytes():
            head += chunk
            if len(head) >= 200:
                break
        body = head[:200].decode("utf-8", "replace").strip()
        retry_after = None
        if resp.status_code in RETRY_AFTER_STATUSES:
            retry_after = retry_after_seconds(
                resp.headers.get("retry-after"), now=datetime.now(UTC)
            )
        return Outcome(
            ok=False,
            error=_scrub(f"HTTP {resp.status_code}: {body}".rstrip(": "), url),
            retry_after=retry_after,
            permanent=resp.status_code in PERMANENT_STATUSES,
        )


def _scrub(message: str, url: str) -> str:
    """An error text without the webhook's secret parts (its path and query)."""
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query):
        if len(secret) > 1:
            message = message.replace(secret, "/…")
    return message[:500]


async def _record(routing: RoutingContext, item: notifications.Due, outcome: Outcome) -> float:
    """Store the attempt; returns the delay before the next one (0 when settled)."""
    settings = routing.settings
    attempts = item.attempts + 1
    delay = 0.0
    if outcome.ok:
        state, result = "sent", "sent"
    elif outcome.permanent or attempts >= settings.notify_max_attempts:
        state, result = "failed", "failed"
    else:
        state, result = "pending", "retried"
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        else:
            delay = retry_delay(attempts, settings.notify_backoff_seconds)
    async with routing.uow() as session:
        await notifications.record_attempt(
            session, item.id, state=state, delay=delay, error=outcome.error
        )
    notify_metrics(routing.metrics.registry).deliveries.labels(result).inc()
    if outcome.ok:
        log.info("notification %d (%s) to team %s sent", item.id, item.kind, item.team)
    else:
        log.warning(
            "notification %d (%s) to team %s: %s after attempt %d (%s)",
            item.id,
            item.kind,
            item.team,
            result,
            attempts,
            outcome.error,
        )
    return delay


async def notify_loop(routing: RoutingContext, client: httpx.AsyncClient) -> None:
    """The delivery worker: send what is due, pause when nothing is left."""
    notify_metrics(routing.metrics.registry)  # the series exist from the first scrape
    # httpx logs every request's URL at INFO; a webhook URL must not reach the logs.
    httpx_log = logging.getLogger("httpx")
    httpx_log.setLevel(max(httpx_log.getEffectiveLevel(), logging.WARNING))
    while True:
        try:
            claimed = await deliver_due(routing, client, limit=BATCH)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("notification pass interrupted: %r; trying again", exc)
            claimed = 0
        if claimed < BATCH:
            await asyncio.sleep(routing.settings.notify_poll_seconds)
