"""Team notifications as Slack incoming-webhook messages, and their retry schedule.

Pure functions. A message names the lead by id and the rep by name only: a channel's audience
is wider than the CRM's, so a lead's e-mail, phone or name never goes into one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

from salesops_routing.domain.assignment import Assignment

LEAD_ASSIGNED: Final = "lead.assigned"
LEAD_REASSIGNED: Final = "lead.reassigned"
LEAD_SLA_BREACHED: Final = "lead.sla_breached"
NOTIFY_KINDS: Final = (LEAD_ASSIGNED, LEAD_REASSIGNED, LEAD_SLA_BREACHED)
ALL_TEAMS: Final = "*"  # a channel of this team hears about every territory
TEAM_PATTERN: Final = r"^[A-Za-z0-9_.:*-]{1,100}$"

MAX_BACKOFF_SECONDS: Final = 600.0
# A receiver may ask for a longer pause than our own cap, but not for days.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only these three characters are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rep(rep_id: UUID | None, name: str | None) -> str:
    if name:
        return f"*{escape(name)}*"
    return f"rep `{rep_id}`"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def slack_payload(text: str, context: list[str]) -> dict[str, Any]:
    """``text`` is what notifications and non-Block-Kit receivers show; blocks add details."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if context:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
        )
    return {"text": text, "blocks": blocks}


def assignment_text(assignment: Assignment) -> str:
    lead = f"Lead `{assignment.lead_id}`"
    where = f" in territory *{escape(assignment.territory_id)}*" if assignment.territory_id else ""
    reason = escape(assignment.reason)
    if assignment.rep_id is None:
        return f"{lead} is waiting in the fallback queue{where}: {reason}"
    verb = "reassigned" if assignment.kind == "reassigned" else "assigned"
    rep = _rep(assignment.rep_id, assignment.rep_name)
    return f"{lead} {verb} to {rep}{where}: {reason}"


def assignment_message(assignment: Assignment) -> dict[str, Any]:
    context = [
        f"strategy `{assignment.strategy}`",
        f"ruleset v{assignment.ruleset_version}",
        f"{_when(assignment.assigned_at)}",
    ]
    if assignment.previous_rep_id is not None:
        context.insert(0, f"previously rep `{assignment.previous_rep_id}`")
    return slack_payload(assignment_text(assignment), context)


def breach_text(
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    rep_name: str | None,
    territory_id: str | None,
    due_at: datetime,
) -> str:
    where = f" (territory *{escape(territory_id)}*)" if territory_id else ""
    rep = _rep(rep_id, rep_name)
    return (
        f"First-touch SLA missed on lead `{lead_id}`{where}: {rep} made no outbound "
        f"touch by {_when(due_at)}"
    )


def breach_message(
    *,
    lead_id: UUID,
    rep_id: UUID | None,
    rep_name: str | None,
    territory_id: str | None,
    due_at: datetime,
    breached_at: datetime,
) -> dict[str, Any]:
    text = breach_text(
        lead_id=lead_id, rep_id=rep_id, rep_name=rep_name, territory_id=territory_id, due_at=due_at
    )
    context = [f"due {_when(due_at)}", f"breached {_when(breached_at)}"]
    if rep_id is not None:
        context.append(f"rep `{rep_id}`")
    return slack_payload(text, context)


def retry_delay(attempts: int, base: float, *, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential, capped, with
    "equal jitter" (half fixed, half random) so that retries after an outage spread out but
    never come back at once."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2.0 ** max(attempts - 1, 0))
    return delay / 2 + rand() * delay / 2


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def redact_url(url: str) -> str:
    """A webhook URL is a secret (whoever has it can post): show scheme and host only."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"
